-- Rescue running jobs of workers whose lease expired (docket.rescue).
SELECT docket.rescue()
