//! Node scoring: reliability score, tier and the reasons behind them, from what the gateway records of each node.
