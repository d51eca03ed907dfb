"""Site inventories: the YAML format, its validation, and the expanded site model."""

from ecohash.inventory.loader import load_site, load_site_text
from ecohash.inventory.site import Container, Node, Rack, Site

__all__ = ["Container", "Node", "Rack", "Site", "load_site", "load_site_text"]
