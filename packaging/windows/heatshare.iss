; Heatshare for Windows: installs the PyInstaller one-folder bundle (packaging/heatshare.spec).
;
; Built by .github/workflows/packages.yml on windows-latest, from the repository root:
;   pyinstaller --noconfirm packaging/heatshare.spec
;   iscc /DAppVersion=0.1.0 packaging\windows\heatshare.iss
; AppVersion comes from heatshare/__about__.py (the workflow reads it); SourceDir is the
; bundle, dist\heatshare by default. The installer lands in dist\.
;
; Per-user by default (no administrator rights asked; "all users" can be chosen), like the
; app's own start at login, which is the current user's Run key. The uninstaller removes
; what this installed and the start-at-login value; the user's history, settings, token and
; logs (in %LOCALAPPDATA%\heatshare) are not touched.

#ifndef AppVersion
  #error Pass the version: iscc /DAppVersion=X.Y.Z packaging\windows\heatshare.iss
#endif
#ifndef SourceDir
  #define SourceDir "..\..\dist\heatshare"
#endif
#define AppName "Heatshare"
#define AppExe "heatshare.exe"

[Setup]
; The AppId ties upgrades and the uninstaller to one product: never change it.
AppId={{E851B1FD-39A5-431F-93D9-861376A4D5C5}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=Heatshare
AppPublisherURL=https://heatshare.org
AppComments=Turn your computer into a heater that earns
VersionInfoVersion={#AppVersion}
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=Heatshare-{#AppVersion}-setup
SetupIconFile=..\..\resources\icons\org.heatshare.Heatshare.ico
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName}
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
; The app and its agent hold files open: Restart Manager closes them for an upgrade.
CloseApplications=yes
RestartApplications=no

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "startatlogin"; Description: "Start Heatshare in the tray when I log in"; GroupDescription: "Start-up:"

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs
; One executable runs the program it is named as (packaging/entry.py): the app starts the
; agent as heatshare-agent.exe beside itself.
Source: "{#SourceDir}\{#AppExe}"; DestDir: "{app}"; DestName: "heatshare-agent.exe"; Flags: ignoreversion
Source: "{#SourceDir}\{#AppExe}"; DestDir: "{app}"; DestName: "heatshare-coordinator.exe"; Flags: ignoreversion

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#AppExe}"; Comment: "Watch the heat your computer makes, and what it earns"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Registry]
; The same value the app's settings switch writes (gui/autostart/windows.py): name
; "Heatshare", the quoted executable and --start-hidden. Removed on uninstall, so no login
; runs a program that is gone.
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Run"; ValueType: string; ValueName: "{#AppName}"; ValueData: """{app}\{#AppExe}"" --start-hidden"; Tasks: startatlogin; Flags: uninsdeletevalue

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[UninstallRun]
; The app and its agent must be gone before their files are removed.
Filename: "{sys}\taskkill.exe"; Parameters: "/F /T /IM heatshare.exe /IM heatshare-agent.exe /IM heatshare-coordinator.exe"; Flags: runhidden; RunOnceId: "StopHeatshare"

; No [UninstallDelete]: the user's data stays for a later install.
