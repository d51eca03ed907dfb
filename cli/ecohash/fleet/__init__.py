"""`ecohash fleet`: every site summed by region (summary), as text, JSON and a page (render)."""
