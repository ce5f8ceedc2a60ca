-- End waiting callback jobs past their deadline or with a cancel request (docket.callback_expire).
SELECT docket.callback_expire()
