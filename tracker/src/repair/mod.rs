//! Repair and rebalance planning: which shards lack copies, which copies to move, riskiest first.
