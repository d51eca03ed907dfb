"""ecohash's side of Ansible: the site file as an inventory, and running playbooks."""
