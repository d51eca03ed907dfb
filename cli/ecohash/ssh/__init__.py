"""Reaching nodes over SSH, with host keys always checked: the one SSH layer of ecohash.

host_key_checking: what every ssh ecohash starts is told, and the site ssh_config it refuses.
known_hosts: which known_hosts lines name a site's hosts.
config: what ssh would do with a site's ssh_config for one node (the node's Target).
client: logging in to a node as Ansible's ssh would, for code that speaks SSH itself.
agent: the short-lived ssh-agent forwarded to a site's executor.

Rollouts, curtailments, the executor and the lab all reach nodes through these, so the
package sits below all of them and imports none of them.
"""
