-- Model capabilities (docs/gateway.md, Model capabilities): the operator's row for a model
-- replaces the shipped default (`domain::capabilities`) as a whole. NULL is "not known" (no clamp,
-- no refusal); flags are BIGINT 0/1 like every other flag, so the same queries decode on both
-- engines through the Any driver.
CREATE TABLE model_capabilities (
    model             TEXT PRIMARY KEY,
    max_output_tokens BIGINT CHECK (max_output_tokens BETWEEN 1 AND 10000000),
    context_window    BIGINT CHECK (context_window BETWEEN 1 AND 10000000),
    reasoning         BIGINT CHECK (reasoning IN (0, 1)),
    tools             BIGINT CHECK (tools IN (0, 1)),
    vision            BIGINT CHECK (vision IN (0, 1)),
    audio             BIGINT CHECK (audio IN (0, 1)),
    updated_at        BIGINT NOT NULL
);
