"""How the portal words quantities for people."""


def size_text(size: int) -> str:
    """Say a size the way people do: 812 bytes, 34 KB, 2.5 MB."""
    if size < 1024:
        return f"{size} byte{'' if size == 1 else 's'}"
    if size < 1024 * 1024:
        return f"{size // 1024} KB"
    return f"{size / (1024 * 1024):.1f}".rstrip("0").rstrip(".") + " MB"
