"""Response and request bodies of the REST API (pydantic v2). Energies kWh, powers kW, ratios 0..1."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from vpp.domain.slots import JST

__all__ = [
    "DEVICE_ID_PATTERN",
    "ID_PATTERN",
    "CapacityItem",
    "CapacityProgress",
    "DeclaredFigureIn",
    "DeclaredFigureOut",
    "Health",
    "ImportResult",
    "Page",
    "PeriodOut",
    "Problem",
    "Provenance",
    "RegionDetail",
    "RegionIn",
    "RegionSummary",
    "SufficiencyOut",
    "TokenOut",
]

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"

# A moment shown in Japan time (+09:00) in JSON, for answers that take no tz parameter (the database
# hands out UTC). Series and reports with a `tz` parameter convert their rows themselves.
JstDatetime = Annotated[
    AwareDatetime,
    PlainSerializer(lambda moment: moment.astimezone(JST).isoformat(), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Provenance = Literal["metered", "declared", "mixed", "none"]
Kwh = Annotated[float, Field(ge=0, allow_inf_nan=False, le=1e15)]
T = TypeVar("T")


class Problem(BaseModel):
    """RFC 9457 problem detail."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, object]] | None = None


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    scope: str


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    detail: str | None = None


class Page(BaseModel, Generic[T]):
    items: list[T]
    limit: int
    offset: int
    next_offset: int | None = Field(description="Offset of the next page; null on the last page")


class RegionSummary(BaseModel):
    region_id: str
    name: str
    name_ja: str | None
    member_sites: int


class RegionDetail(RegionSummary):
    public_sites: int
    private_sites: int
    site_ids: list[str] = Field(description="Member sites; for the city role only public ones are listed")
    data_version: int


class RegionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    name_ja: str | None = Field(None, max_length=200)
    site_ids: list[Annotated[str, Field(pattern=ID_PATTERN)]] = Field(default_factory=list, max_length=10_000)


class PeriodOut(BaseModel):
    kind: str
    label: str
    start: datetime
    end: datetime


class SupplyOut(BaseModel):
    pv_on_site_kwh: float
    contract_renewable_kwh: float
    declared_kwh: float
    total_kwh: float
    provenance: Provenance


class SavingsOut(BaseModel):
    verified_dr_kwh: float
    declared_kwh: float
    total_kwh: float
    provenance: Provenance


class DemandOut(BaseModel):
    metered_kwh: float
    declared_kwh: float
    total_kwh: float
    provenance: Provenance


class DeclaredSeparateOut(BaseModel):
    renewable_supply_kwh: float
    saving_kwh: float
    demand_kwh: float
    ratio: float | None
    source: str
    reason: str


class ExactOut(BaseModel):
    ratio: float | None = Field(description="`ratio` unrounded")
    ratio_pct: float | None = Field(description="`ratio_pct` unrounded")
    completeness: float | None = Field(description="`completeness` unrounded")


class SufficiencyOut(BaseModel):
    region_id: str | None
    site_id: str | None
    period: PeriodOut
    supply: SupplyOut
    savings: SavingsOut
    demand: DemandOut
    ratio: float | None = Field(
        description="(supply + savings) / demand, rounded to 4 decimals (exact in `exact.ratio`); "
        "null when demand is 0, with `ratio_note` saying why"
    )
    ratio_pct: float | None = Field(description="The ratio in %, rounded to 2 decimals (exact in `exact.ratio_pct`)")
    ratio_provenance: Provenance
    ratio_note: str | None = Field(
        default=None,
        description="Why the ratio is null, or what it rests on when metered data are incomplete; null otherwise",
    )
    exact: ExactOut
    co2_avoided_kg: float
    co2_factor_kg_per_kwh: float
    completeness: float | None = Field(
        description="Share of expected metered site-slots present, 0..1, rounded to 4 decimals"
    )
    slots_present: int
    slots_expected: int
    member_sites: int
    contributing_sites: int
    private_sites: int
    declared_sources: str | None
    declared_separately: DeclaredSeparateOut | None = Field(
        None,
        description="Declared figures for the same region and period that include the metered sites: shown "
        "here on their own (the headline figures are metered only) so no site counts twice",
    )
    data_version: int
    computed_at: datetime


class DeclaredFigureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period: Literal["slot", "day", "month", "fiscal_year", "range"]
    value: str = Field(min_length=1, max_length=100, examples=["2023"])
    renewable_supply_kwh: Kwh = 0.0
    saving_kwh: Kwh = 0.0
    demand_kwh: Kwh = 0.0
    source: str = Field(min_length=1, max_length=500)
    includes_metered_sites: bool = Field(
        True,
        description="The figure already contains the region's metered sites (a city statistic covers every "
        "facility). Reports then show it beside the metered figures, never added to them; false only for "
        "figures declared net of the metered sites.",
    )


class DeclaredFigureOut(BaseModel):
    id: int
    period_start: JstDatetime
    period_end: JstDatetime
    renewable_supply_kwh: float
    saving_kwh: float
    demand_kwh: float
    source: str
    includes_metered_sites: bool


class ImportResult(BaseModel):
    imported: int


class CapacityItem(BaseModel):
    category: str
    fiscal_year: int
    capacity_kw: float
    source: str


class CapacityProgress(BaseModel):
    region_id: str
    target_kw: float
    target_fiscal_year: int
    registered_pv_kw: float = Field(description="PV registered on the platform's member sites")
    declared_kw: float = Field(description="Latest declared statistics, summed over categories")
    installed_kw: float
    progress: float = Field(description="installed / target, 0..1+")
    remaining_kw: float
    declared: list[CapacityItem]
    provenance: Provenance


class SiteOut(BaseModel):
    site_id: str
    name: str
    public: bool
    latitude: float | None
    longitude: float | None
    pv_kw: float
    battery_kwh: float
    battery_kw: float
    contract_demand_kw: float | None
    demand_target_kw: float | None
    renewable_share: float
    regions: list[str]
    online: bool | None
    last_reading_at: JstDatetime | None
    peak_programme: bool = Field(
        False,
        description="Enrolled in the day's peak programme: each 30-minute slot's import limit sent by the "
        "DR scheduler from live telemetry (battery sites without EV charging)",
    )


class DeviceOut(BaseModel):
    device_id: str
    kind: str
    rated_power_kw: float | None
    last_reading_at: JstDatetime | None


class SiteDetail(SiteOut):
    devices: list[DeviceOut]


class ReadingOut(BaseModel):
    device_id: str
    kind: str
    ts: datetime
    power_kw: float | None
    energy_pos_kwh: float | None
    energy_neg_kwh: float | None
    soc_pct: float | None
    vehicles: int | None


class BucketOut(BaseModel):
    device_id: str
    kind: str
    bucket_start: datetime
    readings: int
    power_kw_avg: float | None
    power_kw_min: float | None
    power_kw_max: float | None
    soc_pct_avg: float | None


class EnergySlotOut(BaseModel):
    slot_start: datetime
    import_kwh: float
    export_kwh: float
    pv_kwh: float
    battery_charge_kwh: float
    battery_discharge_kwh: float
    ev_kwh: float
    load_kwh: float
    demand_kw: float = Field(description="Average import power over the slot (import kWh x 2)")
    coverage: float


class MonthlyDemandOut(BaseModel):
    month: str = Field(description="JST calendar month, YYYY-MM")
    max_demand_kw: float | None
    max_demand_slot_start: datetime | None
    ratchet_contract_demand_kw: float | None = Field(
        description="Highest monthly maximum of this and the previous 11 months"
    )
