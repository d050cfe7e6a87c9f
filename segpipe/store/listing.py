"""What a store holds under a folder, by store key: the one listing the collectors share."""

import fsspec


def stored_files(fs: fsspec.AbstractFileSystem, root: str, folder: str) -> dict[str, dict]:
    """Every file under `folder` (a store key; subfolders too) by its store key, with its listing
    entry (size, modification time), read afresh: not from the filesystem's listing cache. An
    emptied S3 prefix that lists as a folder holds none."""
    path = f"{root}/{folder}"
    fs.invalidate_cache(path)
    listed = fs.find(path, detail=True) if fs.exists(path) else {}
    prefix = fs._strip_protocol(root).rstrip("/") + "/"  # the form fs.find names its files in
    return {name.removeprefix(prefix): entry for name, entry in listed.items() if entry.get("type") == "file"}
