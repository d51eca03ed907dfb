"""Grid flexibility: cutting a site's draw to a grid target by lowering GPU caps.

rule.py turns a target into caps (exact, like the budget rule); throughput.py says what
the caps are expected to cost; preview.py is the dry run; actuate.py applies an event.
docs/grid.md describes the rule.
"""
