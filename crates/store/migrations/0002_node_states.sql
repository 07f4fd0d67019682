-- Operator decisions on nodes (drained, down) survive restarts.
CREATE TABLE node_states (
    name TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    reason TEXT,
    updated_at BIGINT NOT NULL
);
