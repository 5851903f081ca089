from safe_rlhf_lightning.evaluation import oracle_table


def test_oracle_table_rows_columns_and_missing_values():
    table = oracle_table(
        {
            "untrained": {"helpfulness_benign": -2.0, "cost": -0.1, "num_responses": 300.0},
            "SFT": {"helpfulness_benign": 1.6912, "num_responses": 300.0},
        }
    )
    lines = table.splitlines()
    assert lines[0] == "| metric | untrained | SFT |"
    assert "| helpfulness (benign prompts) ↑ | -2.000 | 1.691 |" in lines
    assert "| mean oracle cost ↓ | -0.100 | – |" in lines
    assert "| responses scored | 300 | 300 |" in lines
    # Metrics that no column has are left out.
    assert not any("harmful ratio" in line for line in lines)
