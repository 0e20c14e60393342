from describe_screen.commands.cli import main

raise SystemExit(main())
