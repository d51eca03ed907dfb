"""The Click commands: one module per command group, each thin over the library.

Every command module is imported for `ecohash --help` and for each command, so a command
imports the library it runs inside its own function: Pulumi, Ansible, paramiko, jinja2
and the like load only for the command that needs them. These imports are deliberately
lazy; none of them works round a cycle (docs/architecture.md).
"""
