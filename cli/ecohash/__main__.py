from ecohash.commands.main import cli

cli(prog_name="ecohash")
