-- Issue 13, the case page knows who the customer is.
-- A company may hide its customers' phone numbers from agents with the `agent` role (supervisors and
-- admins always see them): the case page then shows "+503 7••• ••02". Set with
-- `encargo-admin mask-phones --tenant <slug> on|off`.
-- (A call the customer asked for is recorded in handoff_events as action 'called', with
-- data {"outcome": resolved | no_answer | wrong_number | call_later, "note": "..."}.)
ALTER TABLE tenants ADD COLUMN mask_phones_for_agents boolean NOT NULL DEFAULT false;
