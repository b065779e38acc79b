from gitera.cli import main

main()
