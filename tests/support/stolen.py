"""What a thief learns from a copy of the database files without the keys (issue 17).

A copy is a list of `Source`s: raw bytes with a way to say where an offset lies (a SQLite
page or WAL frame and the table or index that owns it; a PostgreSQL relation file and block;
a `pg_dump` line's table and column). `find_leaks` searches them for `Secret`s in every form
a value is commonly stored in (UTF-8, UTF-16, hex, base64 and, for IP addresses, packed
binary and integers) and names each hit: which secret, in which form, which table and column
holds it now (asked of the copy with SQL) and a few bytes either side.

Nothing here uses the portal's keys: `SQLiteCopy` reads copied files with the sqlite3 module,
`PostgresCopy` reads the server's table files with pg_read_binary_file (superuser) and a
pg_dump, as someone holding the disk or a backup would.
"""

import base64
import ipaddress
import re
import shutil
import sqlite3
import subprocess
import unicodedata
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url

CONTEXT = 24  # bytes shown either side of a hit
SHOWN = 3  # hits shown per secret, form and source; the rest are counted
# A needle of 32 bits (a packed IPv4 address, or its 8 hex digits among the hex of UUIDs and
# dumped ciphertext) turns up by chance about once per 4 G positions searched, i.e. around
# once in a thousand runs over these few megabytes. A stored address appears in several rows
# (each IP here signs in, opens a session and writes audit rows), so such needles count only
# from 2 hits; every other needle carries 40 bits or more and counts from the first.
WEAK_NEEDLE_MIN_HITS = 2
NEWLINE = b"\n"


# --- secrets and their forms -----------------------------------------------------------------

@dataclass(frozen=True)
class Form:
    label: str  # "utf-8", "utf-16-le", "packed", ...
    needle: bytes
    min_hits: int = 1  # WEAK_NEEDLE_MIN_HITS for needles of 32 bits


@dataclass(frozen=True)
class Secret:
    kind: str  # "IP address", "user agent", "name", "email", "subject", ...
    value: str
    forms: tuple[Form, ...] = field(compare=False)

    def __str__(self) -> str:
        return f"{self.kind} {self.value!r}"


def _text_forms(value: str, prefix: str = "") -> list[Form]:
    forms = []
    variants = {"": value}
    nfd = unicodedata.normalize("NFD", value)
    if nfd != value:
        variants["NFD "] = nfd
    for variant, text_ in variants.items():
        raw = text_.encode()
        forms += [Form(f"{prefix}{variant}utf-8", raw),
                  Form(f"{prefix}{variant}utf-16-le", text_.encode("utf-16-le")),
                  Form(f"{prefix}{variant}utf-16-be", text_.encode("utf-16-be")),
                  Form(f"{prefix}{variant}hex", raw.hex().encode()),
                  Form(f"{prefix}{variant}HEX", raw.hex().upper().encode())]
        if len(raw) >= 6:  # base64 of the value on its own (its last, partial group dropped)
            encoded = base64.b64encode(raw).rstrip(b"=")
            forms.append(Form(f"{prefix}{variant}base64",
                              encoded if len(raw) % 3 == 0 else encoded[:-1]))
    return forms


def text_secret(kind: str, value: str) -> Secret:
    """A piece of text: its UTF-8 (NFC and NFD), UTF-16, hex and base64 forms."""
    return Secret(kind, value, tuple(_text_forms(value)))


def ip_secret(value: str) -> Secret:
    """An IP address in its text forms (compressed, exploded, upper case, IPv4-mapped),
    packed binary (as inet, varbinary or a 16-byte mapped IPv4), integer and hex forms."""
    address = ipaddress.ip_address(value)
    texts = {str(address), address.exploded, str(address).upper()}
    packed = address.packed
    weak = WEAK_NEEDLE_MIN_HITS if address.version == 4 else 1  # 32 bits
    binary = [Form("packed", packed, weak), Form("packed, hex", packed.hex().encode(), weak),
              Form("packed, HEX", packed.hex().upper().encode(), weak)]
    if address.version == 4:
        texts |= {f"::ffff:{address}", f"::FFFF:{address}"}
        mapped = ipaddress.IPv6Address(f"::ffff:{address}")
        binary += [Form("packed little-endian", packed[::-1], weak),
                   Form("IPv4-mapped IPv6, packed", mapped.packed),
                   Form("integer", str(int(address)).encode())]
    forms = []
    for shown in sorted(texts):
        forms += [f for f in _text_forms(shown, prefix=f"{shown!r} ")
                  if "base64" not in f.label]
    return Secret("IP address", value, tuple(forms + binary))


def as_uuid(value) -> uuid.UUID | None:
    """A UUID as either backend returns it (uuid.UUID, 32 hex digits as text or bytes)."""
    if isinstance(value, uuid.UUID) or value is None:
        return value
    try:
        return uuid.UUID(value.decode() if isinstance(value, bytes) else str(value))
    except ValueError:
        return None


def blob_key_owners(copy) -> dict[bytes, uuid.UUID]:
    """Whose data key sealed a blob, as a thief reads it: a sealed blob starts with a version
    byte and the 16-byte id of its data key, and data_keys names each key's owner."""
    return {as_uuid(row["id"]).bytes: as_uuid(row["owner_id"]) for row in copy.rows("data_keys")}


def uuid_forms(value) -> list[bytes]:
    """The forms a UUID is stored in: 16 bytes, 32 hex digits, 36-character text."""
    return [value.bytes, value.hex.encode(), value.hex.upper().encode(), str(value).encode(),
            str(value).upper().encode()]


# --- sources and hits ------------------------------------------------------------------------

@dataclass
class Source:
    label: str
    data: bytes
    where: Callable[[int], str] = lambda offset: f"offset {offset}"
    # The table (or index) whose page, file or dump section holds an offset, when known.
    owner: Callable[[int], str | None] = lambda offset: None


@dataclass(frozen=True)
class Leak:
    secret: str
    form: str
    source: str
    hits: int
    shown: tuple[str, ...]  # "page 12 (users): b'...'" for the first few hits
    columns: str  # where the copy's live rows hold it, or why none do

    def __str__(self) -> str:
        lines = [f"{self.secret} as {self.form} in {self.source}: {self.hits} hit(s); "
                 f"held by {self.columns}"]
        lines += [f"      {shown}" for shown in self.shown]
        return "\n".join(lines)


def _offsets(data: bytes, needle: bytes) -> list[int]:
    found, start = [], data.find(needle)
    while start != -1:
        found.append(start)
        start = data.find(needle, start + 1)
    return found


def _context(data: bytes, offset: int, length: int) -> str:
    return repr(data[max(0, offset - CONTEXT):offset + length + CONTEXT])


def find_leaks(sources: Iterable[Source], secrets: Iterable[Secret],
               columns_holding: Callable[[bytes], str]) -> list[Leak]:
    """Every secret, in every form, found in any source (32-bit needles: from 2 hits)."""
    leaks = []
    sources = list(sources)
    for secret in secrets:
        for form in secret.forms:
            for source in sources:
                offsets = _offsets(source.data, form.needle)
                if len(offsets) < form.min_hits:
                    continue
                shown = tuple(f"{source.where(o)}: {_context(source.data, o, len(form.needle))}"
                              for o in offsets[:SHOWN])
                leaks.append(Leak(str(secret), form.label, source.label, len(offsets), shown,
                                  columns_holding(form.needle)))
    return leaks


def find_word(sources: Iterable[Source], word: str, schema: set[str],
              columns_holding: Callable[[bytes], str],
              public_tables: frozenset[str] = frozenset()) -> list[Leak]:
    """A word in any letter case (UTF-8, UTF-16 and hex), outside the schema's own names.

    The schema names things after the word ("crisis_sealed", an index on it), and those names
    are in the files: sqlite_master's rows, pg_dump's COPY lines. Rather than cut those
    records out of the bytes (a CREATE TABLE longer than a page is split across overflow
    pages, and cutting could also cut a value stored beside it), every hit is kept unless it
    lies inside one of the schema's own table, column, index or constraint names, standing
    alone (see `_in_schema_name`). So a data value such as "message.crisis_flagged" or
    "crisis_escalation" counts, while the column name "crisis_sealed" does not (nor would a
    value spelled exactly like a schema name: the tests' structural checks cover those).

    Hits in the pages of `public_tables` (texts the portal shows to anyone, such as its
    published policies, which tell everyone where to call in a crisis) say nothing about a
    person and are left out too; a hit on a page nobody owns any more still counts.
    """
    lowered = word.lower()
    forms = [Form("utf-8, any case", lowered.encode()),
             Form("utf-16-le, any case", lowered.encode("utf-16-le")),
             Form("hex", lowered.encode().hex().encode()),
             Form("HEX", word.upper().encode().hex().upper().encode())]
    names = sorted({name.lower().encode() for name in schema if lowered in name.lower()},
                   key=len, reverse=True)
    leaks = []
    for source in sources:
        folded = source.data.lower()  # ASCII only: offsets are unchanged
        for form in forms:
            offsets = [o for o in _offsets(folded, form.needle)
                       if source.owner(o) not in public_tables
                       and not _in_schema_name(folded, o, form, names,
                                               source.owner(o) in SCHEMA_TABLES)]
            if offsets:
                shown = tuple(f"{source.where(o)}: {_context(source.data, o, len(form.needle))}"
                              for o in offsets[:SHOWN])
                spelled = {source.data[o:o + len(form.needle)] for o in offsets}
                leaks.append(Leak(f"the word {word!r}", form.label, source.label,
                                  len(offsets), shown, "; ".join(
                                      f"{found!r}: {columns_holding(found)}"
                                      for found in sorted(spelled)[:SHOWN])))
    return leaks


SCHEMA_TABLES = frozenset({"sqlite_schema", "sqlite_master"})  # SQLite's own schema table
IDENTIFIER_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.")


def _in_schema_name(data: bytes, offset: int, form: Form, names: list[bytes],
                    in_schema_table: bool) -> bool:
    """Whether the hit lies inside one of the schema's names that hold the word (find_word).

    Elsewhere than the schema's own table the name must stand alone (no letter, digit, "_"
    or "." either side), so "message.crisis_flagged" is not excused by a column named
    "crisis_flag". In SQLite's schema table the values of a record are stored back to back
    (an index's name runs straight into its table's name), so there an exact occurrence is
    enough."""
    if form.label.startswith("utf-8"):
        width = 1
    elif form.label.startswith("utf-16-le"):
        width = 2
    else:
        return False  # the hex of a schema name is not in the files
    word = form.needle[::width]
    for name in names:
        spelled = name if width == 1 else name.decode().encode("utf-16-le")
        start = name.find(word)
        while start != -1:
            begin = offset - start * width
            end = begin + len(spelled)
            if begin >= 0 and data[begin:end] == spelled and (in_schema_table or (
                    (begin < width or data[begin - width] not in IDENTIFIER_BYTES)
                    and (end >= len(data) or data[end] not in IDENTIFIER_BYTES))):
                return True
            start = name.find(word, start + 1)
    return False


def report(leaks: list[Leak], heading: str) -> str:
    return f"{heading} ({len(leaks)} found):\n" + "\n".join(f"  - {leak}" for leak in leaks)


# --- SQLite ---------------------------------------------------------------------------------

def copy_sqlite_files(database: Path, folder: Path, name: str = "stolen.db") -> Path:
    """Copy a database file and its -wal and -shm as they are on disk (no checkpoint first:
    recent pages live in the WAL until one), while the app still has it open."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{database}{suffix}")
        if source.exists():
            shutil.copyfile(source, f"{target}{suffix}")
    return target


class SQLiteCopy:
    """A stolen SQLite database: the files' bytes as copied, and SQL over a second copy.

    The bytes are read before sqlite3 opens anything (opening a database replays its WAL and
    closing the last connection checkpoints it: the search must see the files as stolen)."""

    def __init__(self, stolen: Path, workdir: Path) -> None:
        self.files = {Path(f"{stolen}{s}").name: Path(f"{stolen}{s}").read_bytes()
                      for s in ("", "-wal", "-shm") if Path(f"{stolen}{s}").exists()}
        working = copy_sqlite_files(stolen, workdir, "thief.db")
        self.conn = sqlite3.connect(working)
        self.conn.text_factory = bytes
        self.page_size = self.conn.execute("PRAGMA page_size").fetchone()[0]
        self._owners = {pageno: name.decode() for name, pageno in
                        self.conn.execute("SELECT name, pageno FROM dbstat")}
        self._holding: dict[bytes, str] = {}

    def close(self) -> None:
        self.conn.close()

    def query(self, sql: str, params=()) -> list[tuple]:
        return self.conn.execute(sql, params).fetchall()

    def tables(self) -> dict[str, list[str]]:
        names = [n.decode() for (n,) in self.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return {t: [row[1].decode() for row in self.query(f'PRAGMA table_info("{t}")')]
                for t in names}

    def schema_names(self) -> set[str]:
        """Every identifier in the schema: names and each word of every CREATE statement."""
        found = set()
        for _kind, name, table, sql in self.query(
                "SELECT type, name, tbl_name, sql FROM sqlite_master"):
            found |= {name.decode(), table.decode()}
            found |= {m.decode() for m in re.findall(rb"[A-Za-z0-9_]+", sql or b"")}
        return found

    def index_definitions(self) -> list[tuple[str, str]]:
        return [(n.decode(), (s or b"").decode()) for n, s in self.query(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index'")]

    def _page_owner(self, pageno: int) -> str:
        owner = self._owners.get(pageno)
        return f"page {pageno} ({owner})" if owner else f"page {pageno} (a free page now)"

    def _pageno(self, file: str, data: bytes, offset: int) -> int | None:
        """The database page an offset of a copied file holds (None: a WAL or shm header)."""
        if file.endswith("-shm"):
            return None
        if not file.endswith("-wal"):
            return offset // self.page_size + 1
        frame = 24 + (int.from_bytes(data[8:12], "big") if len(data) >= 32 else self.page_size)
        if offset < 32:
            return None
        start = 32 + (offset - 32) // frame * frame
        return int.from_bytes(data[start:start + 4], "big")

    def _where(self, file: str, data: bytes) -> Callable[[int], str]:
        def where(offset: int) -> str:
            pageno = self._pageno(file, data, offset)
            if file.endswith("-shm"):
                return f"shm offset {offset}"
            if pageno is None:
                return "the WAL header"
            if file.endswith("-wal"):
                frame = 24 + int.from_bytes(data[8:12], "big")
                return f"WAL frame {(offset - 32) // frame + 1}, {self._page_owner(pageno)}"
            return self._page_owner(pageno)
        return where

    def sources(self) -> list[Source]:
        def owner(file: str, data: bytes) -> Callable[[int], str | None]:
            return lambda offset: self._owners.get(self._pageno(file, data, offset) or 0)
        return [Source(name, data, self._where(name, data), owner(name, data))
                for name, data in self.files.items()]

    def columns_holding(self, needle: bytes) -> str:
        """Which live rows' columns hold `needle` (as stored bytes or their text)."""
        if needle not in self._holding:
            found = []
            for table, columns in self.tables().items():
                for column in columns:
                    (count,) = self.conn.execute(
                        f'SELECT count(*) FROM "{table}" '  # noqa: S608 - names from the schema
                        f'WHERE instr(CAST("{column}" AS BLOB), ?) > 0', (needle,)).fetchone()
                    if count:
                        found.append(f"{table}.{column} ({count} row{'s' * (count != 1)})")
            self._holding[needle] = ", ".join(found) or (
                "no live row (a deleted or overwritten row's bytes, or the schema)")
        return self._holding[needle]

    def sealed_lengths(self) -> dict[str, set[int]]:
        """Every `*_sealed` column's stored lengths, as `table.column`."""
        lengths = {}
        for table, columns in self.tables().items():
            for column in columns:
                if column.endswith("_sealed"):
                    lengths[f"{table}.{column}"] = {n for (n,) in self.query(
                        f'SELECT DISTINCT length("{column}") FROM "{table}" '  # noqa: S608
                        f'WHERE "{column}" IS NOT NULL')}
        return lengths

    def values(self, table: str, column: str) -> list:
        return [v for (v,) in self.query(f'SELECT "{column}" FROM "{table}"')]  # noqa: S608

    def rows(self, table: str, where: str = "1 = 1") -> list[dict]:
        cursor = self.conn.execute(f'SELECT * FROM "{table}" WHERE {where}')  # noqa: S608
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


# --- PostgreSQL -----------------------------------------------------------------------------

def libpq_url(url: str) -> str:
    """The libpq form of a SQLAlchemy URL (pg_dump does not know "+psycopg")."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresCopy:
    """A stolen PostgreSQL database: the schema's table, index and TOAST files as the server
    wrote them to disk, the sample values ANALYZE keeps of its columns, and a pg_dump.

    Not searched: the server's WAL (pg_wal), which every database on the server shares (other
    test runs' rows would be found there), and the system catalogs (schema only)."""

    BLOCK = 8192

    def __init__(self, conn: Connection, url: str) -> None:
        self.conn = conn
        self.url = url
        self._holding: dict[bytes, str] = {}
        conn.execute(text("ANALYZE"))  # statistics hold sample values: a thief gets those too
        conn.execute(text("CHECKPOINT"))  # every dirty page written to the files
        self.files: list[Source] = []
        for label, owner, path in self._relation_files():
            data = conn.scalar(text("SELECT pg_read_binary_file(:p)"), {"p": path}) or b""
            self.files.append(Source(f"{label} [{path}]", bytes(data),
                                     lambda offset: f"block {offset // self.BLOCK}",
                                     lambda offset, owner=owner: owner))
        self.statistics = self._statistics()
        dump = subprocess.run(  # a fixed program and the test's own URL
            [shutil.which("pg_dump") or "pg_dump", "--no-owner", "--no-privileges",
             "--dbname", libpq_url(url)], capture_output=True, check=True)
        self.dump = dump.stdout

    def _relation_files(self) -> list[tuple[str, str | None, str]]:
        """(what it is, the table or index it belongs to, its path under the data dir)."""
        rows = self.conn.execute(text(
            "SELECT c.relname, c.relkind, pg_relation_filepath(c.oid), c.reltoastrelid "
            "FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace "
            "AND c.relkind IN ('r', 'i', 'S', 'm')")).all()
        kinds = {"r": "table", "i": "index", "S": "sequence", "m": "materialized view"}
        files = [(f"{kinds[kind]} {name}", name, path) for name, kind, path, _ in rows if path]
        for name, _kind, _path, toast in rows:
            if toast:
                files += [(f"TOAST of {name}", name, p) for (p,) in self.conn.execute(text(
                    "SELECT pg_relation_filepath(:t) UNION ALL SELECT pg_relation_filepath("
                    "indexrelid) FROM pg_index WHERE indrelid = :t"), {"t": toast}) if p]
        return files

    def _statistics(self) -> Source:
        """The sample values ANALYZE keeps of the schema's columns (pg_statistic, through
        pg_stats). Not the raw pg_statistic file: it also holds the statistics of the shared
        catalogs, such as the names of every database on the server."""
        rows = self.conn.execute(text(
            "SELECT tablename, attname, concat_ws(' | ', most_common_vals::text, "
            "histogram_bounds::text) FROM pg_stats WHERE schemaname = 'public'")).all()
        lines = [f"{t} {c}: {v}".encode() for t, c, v in rows if v]
        offsets, start = [], 0
        for line, (t, _c, _v) in zip(lines, [r for r in rows if r[2]], strict=True):
            offsets.append((start, t, line.split(b":", 1)[0].decode().replace(" ", ".")))
            start += len(line) + 1

        def where(offset: int) -> str:
            return next((f"statistics of {col}" for begin, _t, col in reversed(offsets)
                         if begin <= offset), "statistics")

        def owner(offset: int) -> str | None:
            return next((t for begin, t, _col in reversed(offsets) if begin <= offset), None)
        return Source("pg_stats (ANALYZE's sample values)", b"\n".join(lines), where, owner)

    def _dump_where(self, offset: int) -> str:
        data = self.dump
        copy = data.rfind(b"\nCOPY ", 0, offset)
        line_start = data.rfind(b"\n", 0, offset) + 1
        line_end = data.find(b"\n", offset)
        if copy == -1 or data.rfind(b"\n\\.\n", copy, offset) != -1 or copy + 1 == line_start:
            return f"dump line {data.count(NEWLINE, 0, offset) + 1} (not table data)"
        header = data[copy + 1:data.find(b"\n", copy + 1)].decode(errors="replace")
        found = re.match(r"COPY (\S+) \((.*)\) FROM stdin;", header)
        if not found:
            return header[:80]
        columns = [c.strip().strip('"') for c in found.group(2).split(",")]
        field_no = data.count(b"\t", line_start, offset)
        column = columns[field_no] if field_no < len(columns) else "?"
        return f"COPY {found.group(1)}.{column} (line of {line_end - line_start} bytes)"

    def sources(self) -> list[Source]:
        return [*self.files, self.statistics,
                Source("pg_dump", self.dump, self._dump_where, self._dump_owner)]

    def _dump_owner(self, offset: int) -> str | None:
        found = re.match(r"COPY (?:public\.)?\"?(\w+)", self._dump_where(offset))
        return found.group(1) if found else None

    def tables(self) -> dict[str, list[tuple[str, str]]]:
        tables: dict[str, list[tuple[str, str]]] = {}
        for table, column, kind in self.conn.execute(text(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position")):
            tables.setdefault(table, []).append((column, kind))
        return tables

    def schema_names(self) -> set[str]:
        names = set(self.conn.scalars(text(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
            "UNION SELECT attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "WHERE c.relnamespace = 'public'::regnamespace "
            "UNION SELECT conname FROM pg_constraint "
            "WHERE connamespace = 'public'::regnamespace "
            "UNION SELECT typname FROM pg_type WHERE typnamespace = 'public'::regnamespace")))
        return names | {f"public.{n}" for n in names}

    def index_definitions(self) -> list[tuple[str, str]]:
        return list(self.conn.execute(text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")).all())

    def columns_holding(self, needle: bytes) -> str:
        if needle not in self._holding:
            try:
                as_text = needle.decode()
            except UnicodeDecodeError:
                as_text = None
            if as_text is not None and "\x00" in as_text:
                as_text = None
            found = []
            for table, columns in self.tables().items():
                for column, kind in columns:
                    if kind == "bytea":
                        where, value = f'position(:n in "{column}") > 0', needle
                    elif as_text is not None:
                        where, value = f'strpos("{column}"::text, :n) > 0', as_text
                    else:
                        continue
                    count = self.conn.scalar(text(
                        f'SELECT count(*) FROM "{table}" WHERE {where}'),  # noqa: S608
                        {"n": value})
                    if count:
                        found.append(f"{table}.{column} ({count} row{'s' * (count != 1)})")
            self._holding[needle] = ", ".join(found) or (
                "no live row (a dead tuple's bytes, statistics, or the schema)")
        return self._holding[needle]

    def sealed_lengths(self) -> dict[str, set[int]]:
        lengths = {}
        for table, columns in self.tables().items():
            for column, _kind in columns:
                if column.endswith("_sealed"):
                    lengths[f"{table}.{column}"] = set(self.conn.scalars(text(
                        f'SELECT DISTINCT octet_length("{column}") FROM "{table}" '  # noqa: S608
                        f'WHERE "{column}" IS NOT NULL')))
        return lengths

    def values(self, table: str, column: str) -> list:
        return list(self.conn.scalars(text(f'SELECT "{column}" FROM "{table}"')))  # noqa: S608

    def rows(self, table: str, where: str = "true") -> list[dict]:
        result = self.conn.execute(text(f'SELECT * FROM "{table}" WHERE {where}'))  # noqa: S608
        return [dict(row._mapping) for row in result]
