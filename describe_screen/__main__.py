from describe_screen.cli import main

raise SystemExit(main())
