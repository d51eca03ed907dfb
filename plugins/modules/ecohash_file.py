#!/usr/bin/python
"""Ansible module: a file's content, owner, group and mode made what the role says, in one run.

ansible.builtin.template and ansible.builtin.copy run two modules on the node for a file that
is already right (stat to compare, then file for the attributes) and three for one that is
not (stat, slurp for the diff, copy): each is an SSH command the controller starts and a
module it packs. This module compares and writes in one: it reads the file on the node,
writes the new content atomically only when it differs, sets owner, group and mode only
where they differ, and returns the same diff Ansible's own modules give, so `ecohash drift`
reads it as before. The action plugin of the same name renders O(src) as a template on the
controller, as ansible.builtin.template does, and hands the result over as O(content).
"""

from __future__ import annotations

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: ecohash_file
short_description: Write a file's content, owner, group and mode in one module run
description:
  - Makes O(dest) hold O(content) (or the template O(src), rendered on the controller by the
    action plugin of the same name) with the given owner, group and mode; changes only what
    differs, atomically. Supports check and diff mode.
options:
  dest: {type: path, required: true, description: The file on the node.}
  content: {type: str, description: The file's content. Exactly one of O(content) and O(src).}
  src:
    type: path
    description: A template in the role's templates/, rendered on the controller as ansible.builtin.template does.
extends_documentation_fragment: [ansible.builtin.files]
attributes:
  check_mode: {support: full}
  diff_mode: {support: full}
author: ecohash
"""

# Larger or binary files get no content diff, as Ansible's own modules (max_file_size_for_diff).
DIFF_LIMIT = 104448


def diff_side(data):
    if len(data) > DIFF_LIMIT:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def main():
    module = AnsibleModule(
        argument_spec={"dest": {"type": "path", "required": True},
                       "content": {"type": "str", "required": True},
                       # Rendered into content by the action plugin; never reaches the node set.
                       "src": {"type": "path"}},
        add_file_common_args=True,
        supports_check_mode=True,
    )
    dest = module.params["dest"]
    wanted = module.params["content"].encode("utf-8")
    if os.path.isdir(dest):
        module.fail_json(msg="%s is a directory" % dest, dest=dest)
    try:
        with open(dest, "rb") as current:
            before = current.read()
    except FileNotFoundError:
        before = None
    diffs = []
    changed = before != wanted
    if changed:
        old, new = diff_side(before or b""), diff_side(wanted)
        if old is not None and new is not None:
            diffs.append({"before_header": dest, "after_header": dest, "before": old, "after": new})
        else:
            diffs.append({"before_header": dest, "prepared": "%s: content differs (binary or large)" % dest})
        if not module.check_mode:
            directory = os.path.dirname(dest) or "."
            if not os.path.isdir(directory):
                module.fail_json(msg="the directory of %s does not exist" % dest, dest=dest)
            handle, staged = tempfile.mkstemp(prefix=".ecohash-", dir=directory)
            with os.fdopen(handle, "wb") as out:
                out.write(wanted)
            # atomic_move keeps the replaced file's owner, mode and SELinux context; a new
            # file gets the default ones. Either way the attributes are set below.
            module.atomic_move(staged, dest, unsafe_writes=module.params["unsafe_writes"])
    file_args = module.load_file_common_arguments(module.params, path=dest)
    attributes = {"before": {"path": dest}, "after": {"path": dest}}
    if before is None and module.check_mode:
        # Nothing to compare attributes with: the new file gets them all.
        changed = True
    else:
        changed = module.set_fs_attributes_if_different(file_args, changed, diff=attributes)
    # As Ansible's copy module: a new content's diff alone, attributes only when it is the same.
    if not diffs and attributes["before"] != attributes["after"]:
        diffs.append(attributes)
    module.exit_json(changed=changed, dest=dest, diff=diffs if module._diff else None)


if __name__ == "__main__":
    main()
