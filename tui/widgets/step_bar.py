"""The wizard's steps in one line: where you are, which are done, and the Runs list.

    tunedeck  ✓ 1 Data › ▸ 2 Split › · 3 Hyperparameters › · 4 › · 5 › · 6 › · 7 │ Runs

Done steps carry ✓, the current one ▸ (and reverse video), the rest ·, so the bar reads
the same without colour. Every step shows its title when the line fits; else only the
current step and its neighbours do (seven steps in 100 columns); else only the current
one (80 columns). Each step is clickable; the keyboard way is ctrl+n / ctrl+p. The steps
come from the app (`app.steps`), so a new step shows up here by itself.
"""

from __future__ import annotations

from textual.content import Content
from textual.events import Resize
from textual.widgets import Static


class StepBar(Static):
    """One-line step indicator; watches the app's `steps_done`."""

    def __init__(self, current: str, *, id: str | None = None) -> None:
        """Args:
        current: mode name of the screen this bar sits on (a step, or "runs"/"models").
        """
        super().__init__(id=id)
        self.current = current
        self.done: frozenset[str] = frozenset()

    def on_mount(self) -> None:
        self.watch(self.app, "steps_done", self._done_changed, init=True)

    def _done_changed(self, done: frozenset[str]) -> None:
        self.done = done
        self._show()

    def on_resize(self, event: Resize) -> None:
        self._show()

    def _show(self) -> None:
        modes = [step.mode for step in self.app.steps]  # type: ignore[attr-defined]
        here = modes.index(self.current) if self.current in modes else None
        near = set(modes) if here is None else set(modes[max(here - 1, 0) : here + 2])
        for titled in (set(modes), near, {self.current}):
            content = self._content(titled)
            if not self.size.width or content.cell_length <= self.size.width - 2:
                break
        self.update(content)

    def _content(self, titled: set[str]) -> Content:
        """The bar with titles for the steps in `titled`, mark and number for the rest."""
        parts: list[Content | str] = [Content.from_markup("[b]tunedeck[/b] ")]
        for number, step in enumerate(self.app.steps, start=1):  # type: ignore[attr-defined]
            current = step.mode == self.current
            mark = "▸" if current else "✓" if step.mode in self.done else "·"
            style = "reverse b" if current else "$text-success" if mark == "✓" else "$text-muted"
            title = f" {step.title}" if step.mode in titled else ""
            parts.append("›" if number > 1 else " ")
            parts.append(
                Content.from_markup(
                    f"[{style} @click=app.goto_step('{step.mode}')] $mark $number$title [/]",
                    mark=mark,
                    number=str(number),
                    title=title,
                )
            )
        runs_style = "reverse b" if self.current == "runs" else "$text-muted"
        parts += [" │ ", Content.from_markup(f"[{runs_style} @click=app.show_runs] Runs [/]")]
        return Content.assemble(*parts)
