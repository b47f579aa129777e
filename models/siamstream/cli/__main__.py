from siamstream.cli.main import main

main()
