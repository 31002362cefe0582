from aospmdm.cli import main

main()
