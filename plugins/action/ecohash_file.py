"""Action plugin for ecohash.site.ecohash_file: renders `src` as ansible.builtin.template does.

The template is rendered here, on the controller, with the same search path, variables
(ansible_managed and the template_* ones) and defaults (trim_blocks, "\\n" line ends), so a
file it writes is byte for byte the one ansible.builtin.template writes; the result goes to
the node as the module's `content`, in the one module run that compares and writes it.
"""

from __future__ import annotations

import os

from ansible._internal._templating import _template_vars
from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.template import trust_as_template


class ActionModule(ActionBase):

    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp  # unused: the module gets everything in its arguments
        arguments = dict(self._task.args)
        source = arguments.pop("src", None)
        if (source is None) == ("content" not in arguments):
            raise AnsibleActionFail("ecohash_file needs exactly one of src and content")
        if source is not None:
            arguments["content"] = self._render(source, arguments.get("dest"), task_vars)
        result.update(self._execute_module(module_name="ecohash.site.ecohash_file", module_args=arguments,
                                           task_vars=task_vars))
        return result

    def _render(self, source, dest, task_vars):
        try:
            path = self._find_needle("templates", source)
        except AnsibleError as error:
            raise AnsibleActionFail(to_text(error)) from error
        template = trust_as_template(self._loader.get_text_file_contents(path))
        # The search path ansible.builtin.template gives a template's includes.
        search = [*task_vars.get("ansible_search_path", []), self._loader._basedir, os.path.dirname(path)]
        search = [entry for directory in search
                  for entry in (os.path.join(directory, "templates"), directory)]
        variables = task_vars.copy()
        variables.update(_template_vars.generate_ansible_template_vars(
            path=source, fullpath=path, dest_path=dest,
            include_ansible_managed="ansible_managed" not in variables))
        templar = self._templar.copy_with_new_env(searchpath=search, available_variables=variables)
        defaults = {"trim_blocks": True, "lstrip_blocks": False, "newline_sequence": "\n"}
        rendered = templar.template(template, escape_backslashes=False, overrides=defaults)
        return "" if rendered is None else rendered
