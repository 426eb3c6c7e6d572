-- floor: 2
-- Version marks for upgrades with old and new instances side by side (docs/operations.md, Upgrades):
-- each schema version records its name and its floor, the oldest code (by the newest schema version it
-- knows) that still works after it; each instance records the newest schema version its code knows.
-- The floor is 2: the first release refuses every schema above version 1, so it cannot take part.
alter table schema_version add column name text not null default '';
alter table schema_version add column code_floor integer not null default 1;
update schema_version set name = 'first_release' where version = 1;
alter table instances add column schema_known integer not null default 1;
