"""ecohash: infrastructure as code for turning mining sites into GPU inference capacity."""

__version__ = "0.1.0"
