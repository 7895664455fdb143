from posgrade.cli import run

run()
