"""The site stack's entry point: everything it declares lives in ecohash.stack."""

import pulumi

from ecohash.stack.program import site_program

# The stack is named after its site; `ecohash:site` may instead give a site file's path.
site_program(pulumi.Config("ecohash").get("site") or pulumi.get_stack())
