from pairstream.cli import main

main()
