from voicebot.cli.main import main

main()
