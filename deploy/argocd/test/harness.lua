-- Runs an Argo CD health script the way Argo CD does: the resource as the global `obj`, the
-- script's returned table as the verdict.
--   lua5.4 harness.lua <health script>  < fixture
-- The fixture on stdin is a Lua expression for the resource (a table constructor). Prints the
-- status on the first line and the message (with \ and newlines escaped) on the second.
local script = arg[1]
if script == nil then
  io.stderr:write("usage: lua harness.lua <health script> < fixture\n")
  os.exit(2)
end
local source = io.read("*a")
local load_fixture = load or loadstring
local fixture, err = load_fixture("return " .. source, "=fixture")
if fixture == nil then
  io.stderr:write("fixture: " .. tostring(err) .. "\n")
  os.exit(2)
end
obj = fixture()
local health = assert(loadfile(script))
local hs = health()
if type(hs) ~= "table" then
  io.stderr:write("the script returned " .. type(hs) .. ", not a table\n")
  os.exit(1)
end
local function escape(s)
  return (string.gsub(tostring(s), "[\\\n]", { ["\\"] = "\\\\", ["\n"] = "\\n" }))
end
print(escape(hs.status))
print(escape(hs.message))
