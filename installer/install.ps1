<#
.SYNOPSIS
Installs describe-screen on Windows from this source tree.

.DESCRIPTION
Creates a Python virtual environment, installs describe-screen into it, optionally starts the
daemon at every logon (a shortcut in your Startup folder), and runs a short demo. Every step says
what it does; a failure says what to do next. Running it again is safe and quick.

.PARAMETER Dev
Also install the tools for development and model export (pytest, ruff, torch).

.PARAMETER Autostart
Start the describe-screen daemon at every logon.

.PARAMETER NoRun
Do not run the demo at the end.

.PARAMETER Model
Also install a vision model, e.g. smolvlm-256m-instruct (see describe-screen models list). With no
network the installer says so in one sentence and finishes; describe-screen then uses its text reader.

.NOTES
With an NVIDIA GPU (its driver provides nvidia-smi), the CUDA and cuDNN libraries onnxruntime-gpu needs
are installed too; without one, none of them is downloaded.

.EXAMPLE
powershell -ExecutionPolicy Bypass -File installer\install.ps1 -Autostart
#>
[CmdletBinding()]
param(
    [switch]$Dev,
    [switch]$Autostart,
    [switch]$NoRun,
    [string]$Model = ''
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$Repo = Split-Path -Parent $PSScriptRoot
$Venv = if ($env:DESCRIBE_SCREEN_VENV) { $env:DESCRIBE_SCREEN_VENV } else { Join-Path $Repo '.venv' }
$VenvPython = Join-Path $Venv 'Scripts\python.exe'
$VenvPythonW = Join-Path $Venv 'Scripts\pythonw.exe'
$Exe = Join-Path $Venv 'Scripts\describe-screen.exe'
$Extras = if ($Dev) { 'dev,export,voice' } else { 'voice' }

function Say([string]$Message) {
    Write-Host "==> $Message"
}

function Fail([string]$Problem, [string]$Fix) {
    Write-Host ''
    Write-Host "describe-screen was not installed: $Problem"
    Write-Host "What to do: $Fix"
    exit 1
}

# Run a program and return only whether it succeeded: its output goes to the screen (or nowhere
# with -Quiet), never into the return value. Windows PowerShell turns a program's error output into
# a terminating error under 'Stop', so programs run with 'Continue' and are judged by exit code.
function Invoke-Native([string]$Program, [string[]]$Arguments, [switch]$Quiet) {
    # A missing program would leave $LASTEXITCODE from an earlier one, so check first.
    if (-not (Get-Command $Program -ErrorAction SilentlyContinue)) { return $false }
    $ErrorActionPreference = 'Continue'
    if ($Quiet) { & $Program @Arguments *> $null } else { & $Program @Arguments | Out-Host }
    return $LASTEXITCODE -eq 0
}

# Run Python code given on standard input (quotes inside -c arguments get mangled by Windows PowerShell).
function Invoke-PythonCode([string]$Code) {
    $ErrorActionPreference = 'Continue'
    $output = $Code | & $VenvPython -
    return [pscustomobject]@{ Ok = ($LASTEXITCODE -eq 0); Output = "$output".Trim() }
}

function Find-Python {
    $candidates = @()
    if ($env:DESCRIBE_SCREEN_PYTHON) {
        $candidates += [pscustomobject]@{ Program = $env:DESCRIBE_SCREEN_PYTHON; Arguments = @() }
    }
    $candidates += [pscustomobject]@{ Program = 'py'; Arguments = @('-3') }
    $candidates += [pscustomobject]@{ Program = 'python'; Arguments = @() }
    $check = 'import sys; sys.exit(sys.version_info < (3, 10))'
    foreach ($candidate in $candidates) {
        # The Microsoft Store's "python" stand-in fails this check, so it is never picked.
        if (Invoke-Native -Quiet $candidate.Program ($candidate.Arguments + @('-c', $check))) {
            return $candidate
        }
    }
    return $null
}

# ---------------------------------------------------------------- virtual environment

if (Test-Path $VenvPython) {
    if (-not (Invoke-Native -Quiet $VenvPython @('-c', 'import sys; sys.exit(sys.version_info < (3, 10))'))) {
        Fail "the virtual environment at $Venv does not work or its Python is older than 3.10." `
             "Delete that folder, then run this installer again."
    }
    Say "Using the virtual environment at $Venv"
}
else {
    $python = Find-Python
    if ($null -eq $python) {
        Fail 'no Python 3.10 or newer was found.' `
             'Install it with: winget install -e --id Python.Python.3.12 (or from python.org), open a new PowerShell window, and run this installer again.'
    }
    Say "Creating a virtual environment at $Venv"
    if (-not (Invoke-Native $python.Program ($python.Arguments + @('-m', 'venv', $Venv)))) {
        Fail "the virtual environment could not be created at $Venv." `
             'Check that the folder is writable, then run this installer again.'
    }
}

# ---------------------------------------------------------------- the package

# pip takes a while even when nothing changes, so a stamp records what was installed last time.
$Stamp = Join-Path $Venv '.describe-screen-installed'
$StampText = "repo=$Repo`nextras=$Extras`n" + (Get-Content -Raw (Join-Path $Repo 'pyproject.toml'))
$installedHere = (Test-Path $Stamp) -and ((Get-Content -Raw $Stamp) -ceq $StampText) -and
    (Invoke-Native -Quiet $VenvPython @('-c', 'import describe_screen'))

if ($installedHere) {
    Say "describe-screen [$Extras] is already installed in $Venv"
}
else {
    Remove-Item -Force -ErrorAction SilentlyContinue $Stamp
    if ($Dev) {
        # The export extra needs torch; the exact pin matches the version the tests are run with.
        Say 'Installing torch 2.13.0 (needed to export models)'
        if (-not (Invoke-Native $VenvPython @('-m', 'pip', 'install', '-q', 'torch==2.13.0'))) {
            Fail 'torch could not be installed.' 'Check the network connection and free disk space, then run this installer again.'
        }
    }
    Say "Installing describe-screen [$Extras] and its Python packages (this can take a few minutes)"
    if (-not (Invoke-Native $VenvPython @('-m', 'pip', 'install', '-q', '-e', "${Repo}[$Extras]"))) {
        Fail 'pip could not install describe-screen.' `
             "Read pip's message above; check the network connection and free disk space, then run this installer again."
    }
    Set-Content -NoNewline -Encoding UTF8 -Path $Stamp -Value $StampText
}

# An NVIDIA GPU with its driver: the driver installs nvidia-smi, which names each GPU.
function Test-NvidiaGpu {
    if (-not (Get-Command nvidia-smi -ErrorAction SilentlyContinue)) { return $false }
    $ErrorActionPreference = 'Continue'
    $gpus = & nvidia-smi -L 2>$null
    return ($LASTEXITCODE -eq 0) -and ("$gpus" -match '^GPU')
}

# onnxruntime-gpu finds CUDA and cuDNN only in the exact versions it was built for; its [cuda,cudnn]
# extras bring them as pip packages (about 1 GB), which the program preloads. Only with a GPU.
function Install-CudaLibraries {
    if (-not (Test-NvidiaGpu)) { return }
    if ((Invoke-PythonCode 'import sys; from describe_screen.vlm import onnx; sys.exit(bool(onnx.missing_cuda_wheels()))').Ok) {
        Say 'An NVIDIA GPU was found; its CUDA and cuDNN libraries are already installed'
        return
    }
    $version = (Invoke-PythonCode 'from importlib.metadata import version; print(version("onnxruntime-gpu"))').Output
    Say "An NVIDIA GPU was found: installing the CUDA and cuDNN libraries onnxruntime-gpu $version needs (about 1 GB)"
    if (-not (Invoke-Native $VenvPython @('-m', 'pip', 'install', '-q', "onnxruntime-gpu[cuda,cudnn]==$version"))) {
        Fail 'the CUDA libraries could not be installed.' 'Check the network connection and free disk space, then run this installer again.'
    }
    if ((Invoke-PythonCode 'import sys; from describe_screen.vlm import onnx; sys.exit(not onnx.cuda_works())').Ok) {
        Say 'CUDA works: models will run on the GPU'
    } else {
        Say "CUDA could not start, so models will run on the CPU; & '$Exe' doctor says which library is missing"
    }
}

# faster-whisper depends on plain onnxruntime, and installing it overwrites onnxruntime-gpu: both
# ship the same module. On x86-64 the GPU build is the right one (it also runs on the CPU).
if ($env:PROCESSOR_ARCHITECTURE -eq 'AMD64') {
    $versionScript = @'
from importlib.metadata import PackageNotFoundError, version
def v(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return "-"
print(v("onnxruntime"), v("onnxruntime-gpu"))
'@
    $versions = Invoke-PythonCode $versionScript
    if (-not $versions.Ok) { Fail "the Python in $Venv does not run." "Delete that folder, then run this installer again." }
    $ortCpu, $ortGpu = $versions.Output -split ' '
    if ($ortCpu -ne '-') {
        Say "Replacing onnxruntime $ortCpu (pulled in by faster-whisper) with onnxruntime-gpu"
        $gpuSpec = if ($ortGpu -ne '-') { "onnxruntime-gpu==$ortGpu" } else { 'onnxruntime-gpu' }
        $ok = (Invoke-Native $VenvPython @('-m', 'pip', 'uninstall', '-q', '-y', 'onnxruntime', 'onnxruntime-gpu')) -and
              (Invoke-Native $VenvPython @('-m', 'pip', 'install', '-q', '--no-deps', $gpuSpec))
        if (-not $ok) {
            Fail 'onnxruntime-gpu could not be reinstalled.' `
                 "Run: & '$VenvPython' -m pip install --force-reinstall --no-deps onnxruntime-gpu, then run this installer again."
        }
    }
    Install-CudaLibraries
    Say 'Checking onnxruntime'
    $providers = Invoke-PythonCode 'import onnxruntime; print(", ".join(onnxruntime.get_available_providers()))'
    Write-Host "    providers: $($providers.Output)"
    if (-not $providers.Ok -or $providers.Output -notmatch 'CUDAExecutionProvider') {
        Fail "onnxruntime in $Venv is not the GPU build (no CUDAExecutionProvider listed)." `
             "Run: & '$VenvPython' -m pip uninstall -y onnxruntime onnxruntime-gpu; & '$VenvPython' -m pip install --no-deps onnxruntime-gpu"
    }
}

if (-not (Invoke-Native -Quiet $Exe @('--help'))) {
    Fail 'the describe-screen command does not start.' "Run & '$Exe' --help to see the error, and report it."
}

# ---------------------------------------------------------------- a vision model

if ($Model) {
    Say "Installing the vision model $Model"
    # The command says in one sentence why it could not (no network, no disk space); set-up goes on.
    if (-not (Invoke-Native $Exe @('models', 'install', $Model))) {
        Say "describe-screen will use its text reader until you run: & '$Exe' models install $Model"
    }
}

# ---------------------------------------------------------------- start at logon

if ($Autostart) {
    # A shortcut in the Startup folder needs no administrator rights. pythonw runs the daemon
    # without a console window that could be closed by accident.
    $startup = [Environment]::GetFolderPath('Startup')
    $link = Join-Path $startup 'describe-screen.lnk'
    Say "Adding a Startup shortcut so the daemon starts at every logon: $link"
    $shell = New-Object -ComObject WScript.Shell
    $shortcut = $shell.CreateShortcut($link)
    $shortcut.TargetPath = $VenvPythonW
    $shortcut.Arguments = '-m describe_screen daemon'
    $shortcut.WorkingDirectory = $Venv
    $shortcut.Description = 'describe-screen: press a key, hear what is on the screen'
    $shortcut.Save()
    # Start it for this session too; if one already runs, the new copy sees that and exits.
    Start-Process -FilePath $VenvPythonW -ArgumentList '-m', 'describe_screen', 'daemon' -WorkingDirectory $Venv
    Say 'Started the daemon for this session.'
}

# ---------------------------------------------------------------- demo and the spoken last line

if (-not $NoRun) {
    Say 'Running the demo: describe-screen describes the screen and speaks the result'
    if (-not (Invoke-Native $Exe @('demo'))) {
        Fail 'the demo did not finish (see its message above).' `
             "describe-screen is installed, but something it needs is not working: follow the advice above, then run & '$Exe' demo again."
    }
}

Say "describe-screen is installed. Start it with: & '$Exe' daemon"
try {
    Add-Type -AssemblyName System.Speech
    $voice = New-Object System.Speech.Synthesis.SpeechSynthesizer
    $voice.Speak('describe-screen is installed')
    $voice.Dispose()
}
catch {
    # No speech engine or no sound device: the printed line above is enough.
}
