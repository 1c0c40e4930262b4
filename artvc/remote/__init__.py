"""Remotes: plain storage (folders, SFTP, S3, any fsspec URL) that holds packs and refs; no server of ours."""
