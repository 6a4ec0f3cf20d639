"""Telegram two-way control: a trader's own chat, bound by a one-time code from the Profile
page, answers `/status`, `/positions`, `/pnl`, `/orders` and runs `/start`, `/stop`, `/kill`
(after a confirmation reply). `binding` keeps who is whose, `commands` answers a message,
`services.telegram_bot` long-polls the Bot API (getUpdates) and sends the answers.

Enabled by `TELEGRAM_BOT_TOKEN` (the operator's bot, from @BotFather); `TELEGRAM_API_URL`
points the client elsewhere (a local Bot API server, tests). Sits above `execution`.
"""
