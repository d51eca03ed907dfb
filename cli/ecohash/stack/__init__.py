"""A site's Kubernetes resources as Pulumi components, and their offline render.

Importing this package does not import Pulumi: labels.py is shared with the Ansible
inventory, which must stay fast and free of the Pulumi runtime.
"""
