"""A user's cloud scripts (/scripts), and what a server's create makes of one it names: the
script's text and its environment pairs (`resolve`), for the guest's cloud-init seed."""

from __future__ import annotations

import time

from elastic_api.config import Config
from elastic_api.errors import Invalid, NotFound
from elastic_api.model.cloudscript import CloudScript, check_for_image, parse_content, parse_env, parse_title
from elastic_api.store.base import CloudScriptStore

Env = tuple[tuple[str, str], ...]


class ScriptService:
    def __init__(self, config: Config, store: CloudScriptStore) -> None:
        self.config = config
        self.store = store

    async def create(self, owner: str, title: str, content: str, windows: bool) -> CloudScript:
        title = parse_title(title, self.config.max_script_title)
        content = parse_content(content, self.config.max_script_content, windows)
        return await self.store.insert_script(
            owner, title, content, windows, time.time_ns(), self.config.max_scripts_per_user
        )

    async def list(self, owner: str) -> list[CloudScript]:
        return await self.store.list_scripts(owner)

    async def get(self, owner: str, id_: int) -> CloudScript:
        found = await self.store.get_script(owner, id_)
        if found is None:
            raise NotFound(f"script not found: {id_}")
        return found

    async def update(
        self, owner: str, id_: int, title: str | None, content: str | None, windows: bool | None
    ) -> CloudScript:
        """Change what is given (None: unchanged); the content is checked as it will be after the
        change (a script made Linux must name its interpreter absolutely)."""
        found = await self.get(owner, id_)
        if title is not None:
            title = parse_title(title, self.config.max_script_title)
        if content is not None or windows is not None:
            after = found.windows if windows is None else windows
            parse_content(found.content if content is None else content, self.config.max_script_content, after)
        changed = await self.store.update_script(owner, id_, title, content, windows)
        if changed is None:
            raise NotFound(f"script not found: {id_}")
        return changed

    async def delete(self, owner: str, id_: int) -> None:
        """A server made from the script keeps its own copy (in its seed): nothing else to do."""
        if not await self.store.delete_script(owner, id_):
            raise NotFound(f"script not found: {id_}")

    async def resolve(self, user: str, script_id: int, env_text: str | None, windows_image: bool) -> tuple[str, Env]:
        """The text and environment pairs of the user's script `script_id`, for a server whose
        image is (or is not) a Windows one. Invalid naming `user_customize` for an unknown script
        (another user's is as unknown: a create's bad input is a 400, ECS.md §6) or one that cannot
        run there, naming `user_customize_env` for environment lines that do not parse."""
        script = await self.store.get_script(user, script_id)
        if script is None:
            raise Invalid(f"unknown user_customize: no script {script_id}")
        check_for_image(script.content, script.windows, windows_image, f"user_customize {script_id}")
        env = parse_env(env_text, self.config.max_script_env) if env_text is not None else ()
        return script.content, env
