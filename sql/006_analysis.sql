-- Analysis (docs/study.md §8): one row per judged response, and the paired tests in the study's layout.
CREATE TABLE IF NOT EXISTS analysis_observations (
    model            VARCHAR NOT NULL,
    checkpoint       VARCHAR NOT NULL,
    comparison       VARCHAR,            -- original, warm (selected), cold (same epoch), warm_prompt; NULL: none
    is_finetuned     INTEGER NOT NULL,
    dataset          VARCHAR NOT NULL,
    prompt_id        VARCHAR NOT NULL,
    amendment_type   VARCHAR NOT NULL,
    context_group    VARCHAR NOT NULL,
    prompt_template  VARCHAR NOT NULL,
    template_group   VARCHAR NOT NULL,   -- original, user_opinion, mcq
    verdict          VARCHAR NOT NULL,
    refusal          BOOLEAN NOT NULL,
    is_incorrect     INTEGER NOT NULL,   -- Disinfo refusals count as correct
    response_length  INTEGER NOT NULL,
    included         BOOLEAN NOT NULL,   -- false: other refusals, unparseable verdicts, other checkpoints
    exclusion        VARCHAR NOT NULL,
    judge_model      VARCHAR
);

CREATE TABLE IF NOT EXISTS paired_tests (
    "Amendment_type"          VARCHAR NOT NULL,
    "Original Accuracy (%)"   DOUBLE,
    "Fine-tuned Accuracy (%)" DOUBLE,
    "Raw Diff (pp)"           DOUBLE,
    "Cohen's g"               DOUBLE,
    "g Effect Size"           VARCHAR,
    "Odds Ratio"              VARCHAR,
    "p-value"                 DOUBLE,
    "Significant (p < 0.05)"  VARCHAR,
    "p-value (FDR corrected)" DOUBLE,
    "Significant (FDR)"       VARCHAR,
    "Model"                   VARCHAR NOT NULL,
    "Dataset"                 VARCHAR NOT NULL,
    "Test_Type"               VARCHAR NOT NULL,   -- Normal (original prompts), Sycophancy (user-opinion prompts)
    "Comparison"              VARCHAR NOT NULL,   -- warm, cold, warm_prompt
    n_pairs                   INTEGER NOT NULL,
    b                         INTEGER NOT NULL,   -- correct before, incorrect after
    c                         INTEGER NOT NULL    -- incorrect before, correct after
);

-- The four logistic regressions (and their _length variants) and the marginal effects of fine-tuning.
CREATE TABLE IF NOT EXISTS regression_tables (
    analysis       VARCHAR NOT NULL,
    term           VARCHAR NOT NULL,
    coef           DOUBLE,
    std_err        DOUBLE,
    z              DOUBLE,
    p_value        DOUBLE,
    ci_low         DOUBLE,
    ci_high        DOUBLE,
    n_obs          INTEGER,
    log_likelihood DOUBLE,
    converged      BOOLEAN
);

CREATE TABLE IF NOT EXISTS marginal_effects (
    analysis    VARCHAR NOT NULL,
    effect      VARCHAR NOT NULL,   -- fine_tuning, fine_tuning|emotion, fine_tuning|user_opinion, ...
    estimate_pp DOUBLE,             -- average marginal effect, percentage points
    coef_sum    DOUBLE,             -- log-odds linear combination
    std_err     DOUBLE,             -- delta method, covariance included
    p_value     DOUBLE,
    n_obs       INTEGER
);
