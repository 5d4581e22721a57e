-- The models a group may use: a JSON list of model names, or NULL for every model its channels
-- serve. Read into the routing snapshot, so the gateway never queries it per request.
ALTER TABLE groups ADD COLUMN allowed_models TEXT;
