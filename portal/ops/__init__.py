"""Operations: health checks, structured request logs, backups and retention."""
