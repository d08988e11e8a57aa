"""`python -m modelbuild.run`: what the modelbuild CodeBuild project runs (`modelbuild.cli run`).

A module of its own so that the run logic (`modelbuild.run`) and the command line that calls it
(`modelbuild.cli`) do not import each other.
"""

from modelbuild.cli import run

run(prog_name="python -m modelbuild.run")
