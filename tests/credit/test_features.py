"""Ratio features: statements map onto the Polish ratios the default model was trained on."""

from __future__ import annotations

import math
from typing import cast

import pytest

from services.credit.scoring.features import POLISH_FEATURES, polish_attributes, standard_ratios
from services.credit.statements import load_statements

CSV = (
    b"period,currency,unit,total_assets,current_assets,current_liabilities,total_liabilities,"
    b"equity,sales,net_profit,inventory,receivables,cash,profit_before_tax,depreciation,"
    b"interest_expense,operating_profit\n"
    b"""2021,CNY,thousands,1000,600,300,500,500,1200,50,100,200,50,60,10,0,80
2022,CNY,thousands,1050,620,310,510,540,1500,55,105,210,55,65,11,20,90
"""
)


@pytest.fixture(scope="module")
def statements():  # type: ignore[no-untyped-def]
    return load_statements(CSV)


def test_all_64_attributes_in_order(statements) -> None:  # type: ignore[no-untyped-def]
    frame = polish_attributes(statements)
    assert tuple(frame.columns) == POLISH_FEATURES
    assert list(frame.index) == ["2021", "2022"]


def test_ratio_values(statements) -> None:  # type: ignore[no-untyped-def]
    a = polish_attributes(statements).loc["2022"]
    assert a["Attr1"] == pytest.approx(55 / 1050)
    assert a["Attr2"] == pytest.approx(510 / 1050)
    assert a["Attr4"] == pytest.approx(620 / 310)
    assert a["Attr21"] == pytest.approx(1500 / 1200)
    assert a["Attr27"] == pytest.approx(90 / 20)
    assert a["Attr29"] == pytest.approx(math.log10(1050))
    assert a["Attr55"] == pytest.approx(310)
    assert a["Attr43"] == pytest.approx(a["Attr20"] + a["Attr44"])


def test_missing_inputs_and_zero_denominators_are_missing(statements) -> None:  # type: ignore[no-untyped-def]
    a = polish_attributes(statements)
    assert math.isnan(cast(float, a.loc["2021", "Attr21"]))  # no previous year
    assert math.isnan(cast(float, a.loc["2021", "Attr27"]))  # interest expense is zero
    assert math.isnan(cast(float, a.loc["2022", "Attr56"]))  # cost of products sold not given


def test_standard_ratios_by_familiar_name(statements) -> None:  # type: ignore[no-untyped-def]
    r = standard_ratios(statements).loc["2022"]
    assert r["current_ratio"] == pytest.approx(2.0)
    assert r["debt_ratio"] == pytest.approx(510 / 1050)
    assert r["sales_growth"] == pytest.approx(1.25)


def test_profit_lines_reported_under_one_name_fill_the_others() -> None:
    # EBIT and interest only: operating profit is taken as EBIT, profit before tax as EBIT less
    # interest, so interest cover (Attr27) and the profit ratios are not left missing
    only_ebit = load_statements(
        b"period,currency,unit,total_assets,current_assets,current_liabilities,"
        b"total_liabilities,equity,sales,net_profit,ebit,interest_expense\n"
        b"2022,CNY,thousands,1000,600,300,500,500,1200,50,90,20\n"
    )
    a = polish_attributes(only_ebit).loc["2022"]
    assert a["Attr27"] == pytest.approx(90 / 20)
    assert a["Attr7"] == pytest.approx(90 / 1000)
    assert a["Attr14"] == pytest.approx((70 + 20) / 1000)
    # Nothing to derive them from: they stay missing rather than invented
    bare = load_statements(
        b"period,currency,unit,total_assets,current_assets,current_liabilities,"
        b"total_liabilities,equity,sales,net_profit\n"
        b"2022,CNY,thousands,1000,600,300,500,500,1200,50\n"
    )
    assert math.isnan(cast(float, polish_attributes(bare).loc["2022"]["Attr27"]))
