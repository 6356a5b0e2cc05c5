-- Issue 15: an agent's e-mail is unique within a company, not across companies. The same person (or two
-- people sharing an address) may work for two companies on one deployment; each company's account has its
-- own password, role and sessions. The login looks an address up across companies (handoff/agents.py
-- `authenticate` picks the account whose password matches, and asks which company when several do).
DROP INDEX agents_email;
CREATE UNIQUE INDEX agents_tenant_email ON agents (tenant_id, lower(email));
CREATE INDEX agents_email ON agents (lower(email));
