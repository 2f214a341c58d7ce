"""``python manage.py import_assets --person <id> <folder>``: a shoot day's files, in one go.

Every regular file directly in the folder goes through the same checks as an upload in the
admin (``pipeline.asset_create``): the good ones are stored and queued for upload, the
others are refused with every reason. A symbolic link is refused and never followed (it could
name another person's file), nor is anything outside the folder read. A progress bar runs while
files are checked, then a table gives each file's verdict, names printed with any control
character escaped. A broker outage stops nothing: every good file is stored and queued, and the
summary says which uploads were sent to the workers and which wait for the asset sweeper (it
sends them once the broker is back). Exits non-zero when any file was refused.
"""

from __future__ import annotations

import errno
import os
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, cast

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from assets.services import pipeline
from consent.models import ConsentRecord, Person
from portal.queue import sends_recorded

_SYMLINK = "A symbolic link: refused, not followed (import the file itself, from its own folder)."


def printable(name: str) -> str:
    """``name`` safe to print on a terminal: control and format characters (ANSI escapes,
    carriage returns, bidirectional overrides) and undecodable bytes shown escaped, e.g. ``\\x1b``.
    """
    return "".join(
        char.encode("unicode_escape").decode("ascii")
        if unicodedata.category(char) in ("Cc", "Cf", "Cs")
        else char
        for char in name
    )


@dataclass(frozen=True)
class Verdict:
    name: str
    queued: bool
    reasons: tuple[str, ...] = ()
    # Queued, but its upload task could not be sent (the broker was away): the sweeper sends it.
    waits_for_sweeper: bool = False


class Command(BaseCommand):
    help = (
        "Check every file of a folder against the upstream's limits and the person's "
        "verification and consent; queue the good ones for upload. Exits 1 if any is refused."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("folder", type=Path, help="the folder whose files to import")
        parser.add_argument("--person", type=int, required=True, help="the person's id")
        parser.add_argument(
            "--consent",
            type=int,
            help="the consent record's id (default: the approved consent in force that covers "
            "each file's kind)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        folder: Path = options["folder"]
        if not folder.is_dir():
            raise CommandError(f"{printable(str(folder))} is not a folder.")
        try:
            person = Person.objects.get(pk=options["person"])
        except Person.DoesNotExist:
            raise CommandError(f"There is no person with id {options['person']}.") from None
        consent = None
        if options["consent"] is not None:
            try:
                consent = ConsentRecord.objects.get(pk=options["consent"])
            except ConsentRecord.DoesNotExist:
                raise CommandError(
                    f"There is no consent record with id {options['consent']}."
                ) from None
        entries = sorted(
            (entry for entry in os.scandir(folder) if not entry.name.startswith(".")),
            key=lambda entry: entry.name,
        )
        if not entries:
            raise CommandError(f"{printable(str(folder))} has no files.")

        console = self._console()
        verdicts = []
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task(f"Checking files of {person}", total=len(entries))
            for entry in entries:
                verdicts.append(self._import(folder, entry, person=person, consent=consent))
                progress.advance(task)

        console.print(self._table(verdicts))
        refused = sum(not verdict.queued for verdict in verdicts)
        queued = len(verdicts) - refused
        waiting = sum(verdict.waits_for_sweeper for verdict in verdicts)
        console.print(f"{queued} file(s) queued for upload, {refused} refused.")
        if waiting:
            console.print(
                f"{queued - waiting} sent to the workers; {waiting} wait for the asset sweeper "
                "(the broker could not be reached): they are stored and go up once it is back."
            )
        if refused:
            raise CommandError(f"{refused} of {len(verdicts)} files were refused.")

    def _import(
        self,
        folder: Path,
        entry: os.DirEntry[str],
        *,
        person: Person,
        consent: ConsentRecord | None,
    ) -> Verdict:
        name = entry.name
        if entry.is_symlink():
            return Verdict(name, queued=False, reasons=(_SYMLINK,))
        if not entry.is_file(follow_symlinks=False):
            return Verdict(name, queued=False, reasons=("Not a regular file: skipped.",))
        try:
            # O_NOFOLLOW: a link swapped in since the listing is not followed either.
            descriptor = os.open(folder / name, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as error:
            reason = (
                _SYMLINK if error.errno == errno.ELOOP else f"Cannot be read: {error.strerror}."
            )
            return Verdict(name, queued=False, reasons=(reason,))
        with os.fdopen(descriptor, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return Verdict(name, queued=False, reasons=("Not a regular file: skipped.",))
            try:
                with sends_recorded() as sends:
                    asset = pipeline.asset_create(
                        person=person,
                        consent=consent,
                        uploaded_file=File(handle, name=name),
                        uploaded_by=None,
                    )
            except ValidationError as refused:
                return Verdict(name, queued=False, reasons=tuple(refused.messages))
        warnings = tuple(f"warning: {warning}" for warning in asset.precheck_warnings)
        waits = not all(send.sent for send in sends)
        return Verdict(name, queued=True, reasons=warnings, waits_for_sweeper=waits)

    def _console(self) -> Console:
        # Rich writes to the command's own stream (OutputWrapper would add a newline per write).
        stream = cast(TextIO, getattr(self.stdout, "_out", self.stdout))
        terminal = stream.isatty()
        # Off a terminal (a log, a pipe) the table gets room for its reasons.
        return Console(file=stream, width=None if terminal else 160, force_terminal=terminal)

    def _table(self, verdicts: list[Verdict]) -> Table:
        table = Table(title="Import summary")
        table.add_column("file")
        table.add_column("verdict")
        table.add_column("reasons")
        for verdict in verdicts:
            # File names and reasons as plain Text: a "[" in them is not Rich markup.
            table.add_row(
                Text(printable(verdict.name)),
                _verdict_text(verdict),
                Text("\n".join(printable(reason) for reason in verdict.reasons) or "—"),
            )
        return table


def _verdict_text(verdict: Verdict) -> Text:
    if not verdict.queued:
        return Text("refused", style="red")
    if verdict.waits_for_sweeper:
        return Text("queued (waits for the sweeper)", style="yellow")
    return Text("queued", style="green")
