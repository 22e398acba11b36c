"""API: declared statistics per region, API clients, daily/monthly site energy and region data versions.

Why the daily and monthly tables: a fiscal year of 30-minute rows for the city's 1,050 sites is
about 18 million site-slots, too many to sum within an interactive request. Triggers on
`site_energy_30min` recompute the (site, JST day) and (site, JST month) rows an insert, update or
delete touched, so a fiscal year reads ~12 rows per site. Recomputing instead of adding deltas
keeps late and corrected slots exact. PV consumed on site is clamped per slot before it is summed.

`region_data_version` is bumped whenever a region's data changes (energy of a member site,
membership, declared figures), so the API can cache a region's reports and still never serve a
stale one.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = """
-- Top-down figures a region declares (the city's yearly statistics), kept apart from
-- metered data so every report can say which is which.
CREATE TABLE declared_figures (
    id                    serial PRIMARY KEY,
    region_pk             int NOT NULL REFERENCES regions (id) ON DELETE CASCADE,
    period_start          timestamptz NOT NULL,
    period_end            timestamptz NOT NULL CHECK (period_end > period_start),
    renewable_supply_kwh  double precision NOT NULL DEFAULT 0 CHECK (renewable_supply_kwh >= 0),
    saving_kwh            double precision NOT NULL DEFAULT 0 CHECK (saving_kwh >= 0),
    demand_kwh            double precision NOT NULL DEFAULT 0 CHECK (demand_kwh >= 0),
    source                text NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (region_pk, period_start, period_end, source)
);

-- Installed renewable capacity declared by statistics (e.g. the city's FY2020 table), per category.
CREATE TABLE declared_capacity (
    id           serial PRIMARY KEY,
    region_pk    int NOT NULL REFERENCES regions (id) ON DELETE CASCADE,
    category     text NOT NULL CHECK (length(category) BETWEEN 1 AND 100),
    fiscal_year  int NOT NULL CHECK (fiscal_year BETWEEN 1900 AND 2999),
    capacity_kw  double precision NOT NULL CHECK (capacity_kw >= 0),
    source       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (region_pk, category, fiscal_year)
);

-- OAuth2 client-credentials clients. Only a salted scrypt hash of the secret is stored.
CREATE TABLE api_clients (
    id           serial PRIMARY KEY,
    client_id    text NOT NULL UNIQUE CHECK (client_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    secret_hash  text NOT NULL,
    role         text NOT NULL CHECK (role IN ('operator', 'city', 'site')),
    site_pk      int REFERENCES sites (id) ON DELETE CASCADE,
    description  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    CHECK ((role = 'site') = (site_pk IS NOT NULL))
);

CREATE TABLE site_energy_daily (
    site_pk                int NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    day                    date NOT NULL,
    import_kwh             double precision NOT NULL,
    export_kwh             double precision NOT NULL,
    pv_kwh                 double precision NOT NULL,
    pv_on_site_kwh         double precision NOT NULL,
    battery_charge_kwh     double precision NOT NULL,
    battery_discharge_kwh  double precision NOT NULL,
    ev_kwh                 double precision NOT NULL,
    load_kwh               double precision NOT NULL,
    slots_present          int NOT NULL,
    PRIMARY KEY (site_pk, day)
);

CREATE TABLE site_energy_monthly (LIKE site_energy_daily INCLUDING DEFAULTS);
ALTER TABLE site_energy_monthly RENAME COLUMN day TO month;
ALTER TABLE site_energy_monthly ADD PRIMARY KEY (site_pk, month);
ALTER TABLE site_energy_monthly ADD FOREIGN KEY (site_pk) REFERENCES sites (id) ON DELETE CASCADE;

-- Reports select a period across all sites of a region: by day or month first.
CREATE INDEX site_energy_daily_day ON site_energy_daily (day);
CREATE INDEX site_energy_monthly_month ON site_energy_monthly (month);

CREATE TABLE region_data_version (
    region_pk   int PRIMARY KEY REFERENCES regions (id) ON DELETE CASCADE,
    version     bigint NOT NULL DEFAULT 0,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
"""

# One function serves the INSERT, UPDATE and DELETE triggers: each names its transition table
# `changed`. A slot counts as present when the grid meter covered any of it (coverage > 0).
FUNCTIONS = """
-- Bumps the regions' data versions and tells listening API processes ('<region_pk>:<version>'),
-- so they can drop cached reports without asking the database on every request.
CREATE FUNCTION vpp_bump_regions(region_pks int[]) RETURNS void LANGUAGE sql AS $$
    WITH bumped AS (
        INSERT INTO region_data_version AS v (region_pk, version, changed_at)
        SELECT DISTINCT r, 1, now() FROM unnest(region_pks) AS r WHERE r IS NOT NULL ORDER BY r
        ON CONFLICT (region_pk) DO UPDATE SET version = v.version + 1, changed_at = now()
        RETURNING region_pk, version
    )
    SELECT count(pg_notify('vpp_region_data', region_pk || ':' || version)) FROM bumped
$$;

CREATE FUNCTION vpp_bump_region_versions(site_pks int[]) RETURNS void LANGUAGE sql AS $$
    SELECT vpp_bump_regions(ARRAY(SELECT DISTINCT region_pk FROM region_sites WHERE site_pk = ANY(site_pks)))
$$;

CREATE FUNCTION vpp_refresh_site_energy_rollups() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched int[];
BEGIN
    -- Two transactions recomputing the same day or month from rows the other has not committed
    -- would each miss the other's rows. Serialise the recomputation: once the lock is granted,
    -- the statements below take fresh snapshots that include whatever the previous holder committed.
    PERFORM pg_advisory_xact_lock(1447448624, 1);  -- 'VPP0' key space, object 1: energy rollups
    WITH keys AS (
        SELECT DISTINCT site_pk, (slot_start AT TIME ZONE 'Asia/Tokyo')::date AS day FROM changed
    ), fresh AS (
        SELECT k.site_pk, k.day, count(e.site_pk) AS n,
            coalesce(sum(e.import_kwh), 0) AS import_kwh, coalesce(sum(e.export_kwh), 0) AS export_kwh,
            coalesce(sum(e.pv_kwh), 0) AS pv_kwh,
            coalesce(sum(greatest(e.pv_kwh - e.export_kwh, 0)), 0) AS pv_on_site_kwh,
            coalesce(sum(e.battery_charge_kwh), 0) AS battery_charge_kwh,
            coalesce(sum(e.battery_discharge_kwh), 0) AS battery_discharge_kwh,
            coalesce(sum(e.ev_kwh), 0) AS ev_kwh, coalesce(sum(e.load_kwh), 0) AS load_kwh,
            count(*) FILTER (WHERE e.coverage > 0) AS slots_present
        FROM keys k
        LEFT JOIN site_energy_30min e ON e.site_pk = k.site_pk
         AND e.slot_start >= k.day::timestamp AT TIME ZONE 'Asia/Tokyo'
         AND e.slot_start < (k.day + 1)::timestamp AT TIME ZONE 'Asia/Tokyo'
        GROUP BY k.site_pk, k.day
    ), gone AS (
        DELETE FROM site_energy_daily d USING fresh f
        WHERE d.site_pk = f.site_pk AND d.day = f.day AND f.n = 0
    )
    INSERT INTO site_energy_daily AS d
    SELECT site_pk, day, import_kwh, export_kwh, pv_kwh, pv_on_site_kwh, battery_charge_kwh,
           battery_discharge_kwh, ev_kwh, load_kwh, slots_present
    FROM fresh WHERE n > 0 ORDER BY site_pk, day
    ON CONFLICT (site_pk, day) DO UPDATE SET
        import_kwh = EXCLUDED.import_kwh, export_kwh = EXCLUDED.export_kwh, pv_kwh = EXCLUDED.pv_kwh,
        pv_on_site_kwh = EXCLUDED.pv_on_site_kwh, battery_charge_kwh = EXCLUDED.battery_charge_kwh,
        battery_discharge_kwh = EXCLUDED.battery_discharge_kwh, ev_kwh = EXCLUDED.ev_kwh,
        load_kwh = EXCLUDED.load_kwh, slots_present = EXCLUDED.slots_present;

    WITH months AS (
        SELECT DISTINCT site_pk, date_trunc('month', slot_start AT TIME ZONE 'Asia/Tokyo')::date AS month
        FROM changed
    ), fresh AS (
        SELECT k.site_pk, k.month, count(d.site_pk) AS n,
            coalesce(sum(d.import_kwh), 0) AS import_kwh, coalesce(sum(d.export_kwh), 0) AS export_kwh,
            coalesce(sum(d.pv_kwh), 0) AS pv_kwh, coalesce(sum(d.pv_on_site_kwh), 0) AS pv_on_site_kwh,
            coalesce(sum(d.battery_charge_kwh), 0) AS battery_charge_kwh,
            coalesce(sum(d.battery_discharge_kwh), 0) AS battery_discharge_kwh,
            coalesce(sum(d.ev_kwh), 0) AS ev_kwh, coalesce(sum(d.load_kwh), 0) AS load_kwh,
            coalesce(sum(d.slots_present), 0) AS slots_present
        FROM months k
        LEFT JOIN site_energy_daily d ON d.site_pk = k.site_pk
         AND d.day >= k.month AND d.day < (k.month + interval '1 month')::date
        GROUP BY k.site_pk, k.month
    ), gone AS (
        DELETE FROM site_energy_monthly m USING fresh f
        WHERE m.site_pk = f.site_pk AND m.month = f.month AND f.n = 0
    )
    INSERT INTO site_energy_monthly AS m
    SELECT site_pk, month, import_kwh, export_kwh, pv_kwh, pv_on_site_kwh, battery_charge_kwh,
           battery_discharge_kwh, ev_kwh, load_kwh, slots_present
    FROM fresh WHERE n > 0 ORDER BY site_pk, month
    ON CONFLICT (site_pk, month) DO UPDATE SET
        import_kwh = EXCLUDED.import_kwh, export_kwh = EXCLUDED.export_kwh, pv_kwh = EXCLUDED.pv_kwh,
        pv_on_site_kwh = EXCLUDED.pv_on_site_kwh, battery_charge_kwh = EXCLUDED.battery_charge_kwh,
        battery_discharge_kwh = EXCLUDED.battery_discharge_kwh, ev_kwh = EXCLUDED.ev_kwh,
        load_kwh = EXCLUDED.load_kwh, slots_present = EXCLUDED.slots_present;

    SELECT array_agg(DISTINCT site_pk) INTO touched FROM changed;
    PERFORM vpp_bump_region_versions(touched);
    RETURN NULL;
END $$;

CREATE TRIGGER site_energy_30min_rollup_ins AFTER INSERT ON site_energy_30min
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION vpp_refresh_site_energy_rollups();
CREATE TRIGGER site_energy_30min_rollup_upd AFTER UPDATE ON site_energy_30min
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION vpp_refresh_site_energy_rollups();
CREATE TRIGGER site_energy_30min_rollup_del AFTER DELETE ON site_energy_30min
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION vpp_refresh_site_energy_rollups();

-- Membership, contracts and declared figures change a region's reports too.
CREATE FUNCTION vpp_bump_region_of_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    rec record;
BEGIN
    rec := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    IF TG_TABLE_NAME = 'sites' THEN
        PERFORM vpp_bump_region_versions(ARRAY[rec.id]);
    ELSE
        PERFORM vpp_bump_regions(ARRAY[rec.region_pk]);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER region_sites_bump AFTER INSERT OR UPDATE OR DELETE ON region_sites
    FOR EACH ROW EXECUTE FUNCTION vpp_bump_region_of_row();
CREATE TRIGGER declared_figures_bump AFTER INSERT OR UPDATE OR DELETE ON declared_figures
    FOR EACH ROW EXECUTE FUNCTION vpp_bump_region_of_row();
CREATE TRIGGER declared_capacity_bump AFTER INSERT OR UPDATE OR DELETE ON declared_capacity
    FOR EACH ROW EXECUTE FUNCTION vpp_bump_region_of_row();
CREATE TRIGGER sites_bump AFTER UPDATE OF renewable_share, is_public, pv_kw ON sites
    FOR EACH ROW EXECUTE FUNCTION vpp_bump_region_of_row();
"""

# Kawasaki's defaults (DOMAIN.md): the whole city, and the decarbonisation leading area with its two parts.
DEFAULT_REGIONS = """
INSERT INTO regions (region_id, name, name_ja) VALUES
    ('kawasaki', 'Kawasaki City', '川崎市'),
    ('leading-area', 'Decarbonisation leading area', '脱炭素先行地域'),
    ('leading-area-private', 'Leading area: Mizonokuchi private facilities', '脱炭素先行地域 溝口周辺民間施設'),
    ('leading-area-public', 'Leading area: city public facilities', '脱炭素先行地域 市公共施設')
ON CONFLICT (region_id) DO NOTHING;
"""


def upgrade() -> None:
    op.execute(TABLES)
    op.execute(FUNCTIONS)
    op.execute(DEFAULT_REGIONS)


def downgrade() -> None:
    for trigger, table in (
        ("site_energy_30min_rollup_ins", "site_energy_30min"),
        ("site_energy_30min_rollup_upd", "site_energy_30min"),
        ("site_energy_30min_rollup_del", "site_energy_30min"),
        ("region_sites_bump", "region_sites"),
        ("sites_bump", "sites"),
    ):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    for table in (
        "region_data_version",
        "site_energy_monthly",
        "site_energy_daily",
        "api_clients",
        "declared_capacity",
        "declared_figures",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    op.execute("DROP FUNCTION IF EXISTS vpp_bump_region_of_row()")
    op.execute("DROP FUNCTION IF EXISTS vpp_refresh_site_energy_rollups()")
    op.execute("DROP FUNCTION IF EXISTS vpp_bump_region_versions(int[])")
    op.execute("DROP FUNCTION IF EXISTS vpp_bump_regions(int[])")
