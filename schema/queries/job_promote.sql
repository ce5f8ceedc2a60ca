-- Promote due scheduled/retryable jobs; seconds until the next is due.
SELECT promoted, next_due_in FROM docket.promote()
