"""Mappings: the built-ins, files in YAML or JSON, and errors that name the field at fault."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fraud_detection.transactions.frame import ROLES, key_column
from fraud_detection.transactions.mapping import (
    BUILTIN,
    BUILTIN_DIR,
    MappingError,
    TransactionMapping,
    load_mapping,
    parse_mapping,
)

PAYSIM_HEADER = (
    "step,type,amount,nameOrig,oldbalanceOrg,newbalanceOrig,"
    "nameDest,oldbalanceDest,newbalanceDest,isFraud,isFlaggedFraud"
)

MINIMAL = {"event_time": "t", "entities": {"card": "card"}, "amount": "amt", "label": "fraud"}


def test_paysim_names_every_column_of_its_exact_schema_once() -> None:
    assert sorted(column for _, column in load_mapping("paysim").sources()) == sorted(PAYSIM_HEADER.split(","))
    assert load_mapping("paysim").time_unit == "hours"
    assert load_mapping("paysim").entities == {"card": "nameOrig", "destination": "nameDest"}
    assert "isFlaggedFraud" in load_mapping("paysim").excluded
    assert "isFlaggedFraud" not in load_mapping("paysim").canonical_columns()


def test_the_built_ins_load_by_name_from_files_a_user_could_copy() -> None:
    assert sorted(path.stem for path in BUILTIN_DIR.glob("*.yaml")) == sorted(BUILTIN)
    for name in BUILTIN:
        assert load_mapping(name) == load_mapping(BUILTIN_DIR / f"{name}.yaml")


def test_a_mapping_file_in_yaml_or_json_loads(tmp_path: Path) -> None:
    text = "event_time: when\ntime_unit: datetime\nentities:\n  terminal: shop\n  card: pan\namount: amt\nlabel: y\n"
    (tmp_path / "m.yaml").write_text(text + "label_delay_seconds: 604800\nnumeric: [balance]\n")
    mapping = load_mapping(tmp_path / "m.yaml")
    assert mapping.roles() == ("card", "terminal")  # ROLES order, whatever the file's order
    assert mapping.label_delay == 604_800.0
    assert mapping.canonical_columns()[3:5] == [key_column("card"), key_column("terminal")]
    (tmp_path / "m.json").write_text(json.dumps(mapping.model_dump()))
    assert load_mapping(tmp_path / "m.json") == mapping


def test_key_column_names_each_role_and_refuses_others() -> None:
    assert [key_column(role) for role in ROLES] == ["key_card", "key_terminal", "key_destination"]
    with pytest.raises(ValueError, match="entity role must be one of card, terminal, destination, got 'shop'"):
        key_column("shop")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"event_time": None}, "event_time is required"),
        ({"amount": ""}, "amount: must name a column, got an empty name"),
        ({"entities": {}}, "entities must not be empty"),
        ({"entities": {"shop": "s"}}, "entities.shop must be one of 'card', 'terminal' or 'destination', got 'shop'"),
        ({"time_unit": "days"}, "time_unit must be one of 'seconds', 'hours' or 'datetime', got 'days'"),
        ({"label_delay_seconds": -1}, "label_delay_seconds: Input should be greater than or equal to 0"),
        ({"label_time": "lt", "label_delay_seconds": 5}, "give label_time (a column) or label_delay_seconds"),
        ({"numeric": ["amt"]}, "numeric: column 'amt' is already mapped as amount"),
        ({"excluded": ["card"]}, "excluded: column 'card' is already mapped as entities.card"),
        ({"categorical": ["label"]}, "categorical: a request column may not be named 'label'"),
        ({"colour": "x"}, "unknown field 'colour'"),
    ],
)
def test_a_bad_mapping_names_its_field(change: dict[str, object], message: str) -> None:
    content = {key: value for key, value in {**MINIMAL, **change}.items() if value is not None}
    with pytest.raises(MappingError) as raised:
        parse_mapping(content, "my.yaml")
    assert str(raised.value).startswith("my.yaml: ")
    assert message in str(raised.value)


def test_a_missing_or_unreadable_mapping_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match=r"nope: neither a built-in mapping \(paysim, customer_terminal\)"):
        load_mapping("nope")
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(MappingError, match=r"is \.yaml, \.yml or \.json"):
        load_mapping(tmp_path / "m.txt")
    (tmp_path / "bad.yaml").write_text("event_time: [unclosed\n")
    with pytest.raises(MappingError, match="cannot be read as yaml"):
        load_mapping(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(MappingError, match="a mapping is an object of fields, got list"):
        load_mapping(tmp_path / "list.yaml")


def test_a_mapping_is_frozen() -> None:
    with pytest.raises(ValueError, match="frozen"):
        load_mapping("paysim").amount = "x"
    assert isinstance(load_mapping("paysim"), TransactionMapping)


def test_the_mapping_file_shown_in_the_docs_is_valid() -> None:
    import yaml

    text = (Path(__file__).resolve().parents[2] / "docs" / "transactions.md").read_text(encoding="utf-8")
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    mapping = parse_mapping(yaml.safe_load(example), "docs/transactions.md")
    assert mapping.roles() == ("card", "terminal") and mapping.label_delay == 30 * 86_400
