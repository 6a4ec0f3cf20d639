"""Reports and the what-if replay: trade statistics (`metrics`, pure), the replay's rules
(`replay_rules`, pure), TradingView trade exports (`tradingview_trades`, pure), broker
candles with their local cache (`candles`), and the jobs and queries the pages and the CLI
call (`replay`, `report`). May import `execution` and below.
"""
