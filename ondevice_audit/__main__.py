from ondevice_audit.cli import main

main()
