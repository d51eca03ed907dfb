"""`ecohash render`: a site's Kubernetes objects as reviewed YAML, offline."""

from __future__ import annotations

from pathlib import Path

import click

from ecohash.commands.options import CONTEXT_SETTINGS, load, site_argument


@click.command(context_settings=CONTEXT_SETTINGS)
@site_argument
@click.option("-o", "--output", "output", metavar="DIR",
              help="Directory to write, replaced whole: only a missing or empty one, or an "
                   "earlier render; never a link. '-' prints one YAML stream. Default: rendered/SITE.")
def render(site: str, output: str | None) -> None:
    """Write every Kubernetes object SITE's stack declares, without a cluster.

    Runs the site stack's program through Pulumi's runtime with its mock
    monitor, validates every object strictly against the schemas of the node
    standard's Kubernetes version (custom resources against their CRDs), and
    checks the policies: GPU workloads have limits, no credential in plain
    config, the power budget equals `ecohash plan --json`. One file per object,
    sorted and byte-identical across runs. Nothing is written if a check fails.

    Example:

        ecohash render tx-odessa

        ecohash render tx-odessa -o - | kubectl diff -f -
    """
    from ecohash.stack.render import checked_render, to_yaml, write_render
    from ecohash.standard import kubernetes_minor, load_standard, standard_file_of

    loaded = load(site)
    standard = load_standard(standard_file_of(loaded))
    rendered = checked_render(loaded, standard)
    if output == "-":
        click.echo("".join(f"---\n{to_yaml(obj)}" for obj in rendered.objects), nl=False)
        return
    out_dir = Path(output) if output else Path("rendered") / loaded.name
    files = write_render(rendered, out_dir)
    click.echo(f"{loaded.name}: {len(files)} objects in {out_dir}/, strict-valid for Kubernetes "
               f"{kubernetes_minor(standard)}, policies met")
