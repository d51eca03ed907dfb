"""A small site for curtailment tests: three containers of 8-GPU H100 nodes, flex 1, 3 and 0.

Every node draws 2000 + 8 x 700 = 7600 W flat out; no budget binds, so every planned cap
is 700 W; the plan's IT draw is 12 x 7600 = 91.2 kW, 114 kW at the meter (pue 1.25).
"""

from __future__ import annotations

from ecohash.budget import Plan, compile_budget
from ecohash.inventory import load_site_text

SITE = """\
apiVersion: ecohash.io/v1
kind: Site
metadata:
  name: grid-test
  region: us-south
spec:
  power:
    grid_mw: 1
    reserve_pct: 0
    pue: 1.25
    curtailment:
      programs:
        - {name: ers-10, by_pct: 20, max_hours: 1, restore_minutes: 2}
  network:
    mgmt_cidr: 10.30.0.0/24
  gpu_models:
    h100-sxm: {tdp_w: 700, min_cap_w: 200}
  skus:
    h8: {gpu: h100-sxm, gpus: 8, host_w: 2000}
  containers:
    - name: c01
      flex: 1
      cooling: air
      power_kw: 40
      cooling_kw: 40
      racks:
        - name: r01
          nodes:
            - {name: "c01-r01-n{i:02d}", count: 4, start: 1, sku: h8, mgmt_ip: 10.30.0.11}
    - name: c02
      flex: 3
      cooling: air
      power_kw: 40
      cooling_kw: 40
      racks:
        - name: r01
          nodes:
            - {name: "c02-r01-n{i:02d}", count: 4, start: 1, sku: h8, mgmt_ip: 10.30.0.21}
    - name: c03
      flex: 0
      cooling: air
      power_kw: 40
      cooling_kw: 40
      racks:
        - name: r01
          nodes:
            - {name: "c03-r01-n{i:02d}", count: 4, start: 1, sku: h8, mgmt_ip: 10.30.0.31}
"""


def grid_plan() -> Plan:
    return compile_budget(load_site_text(SITE, "grid-test.yaml"))
