from posgrade.cli import main

main()
