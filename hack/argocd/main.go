// Command argocd runs an Argo CD resource health check (a Lua script) against Kubernetes objects
// the way Argo CD's application controller runs a check configured in argocd-cm
// (resource.customizations.health.<group>_<kind>), so that tests/argocd_health.rs proves the
// scripts in deploy/argocd/ with the engine that will run them, not with some other Lua:
//
//   - the engine is github.com/yuin/gopher-lua at the version Argo CD requires (go.mod);
//   - only the libraries Argo CD opens for an argocd-cm script without useOpenLibs: base, table and
//     package. No string, math or io: a script calling string.format works in a stock Lua but
//     fails in Argo CD, so it must fail here too. Argo CD also offers os.time and os.date; they are
//     left out on purpose, a health check must not depend on the clock;
//   - the object as Argo CD hands it over: the global obj, JSON objects as tables with string keys,
//     arrays as 1-based sequences, numbers as Lua numbers, null as nil;
//   - a fresh Lua state per object with a one-second limit, and the script's last returned value
//     read as {status, message}: anything but a table is an error, and a status other than Argo CD's
//     six becomes Unknown, as Argo CD reports it.
//
// Usage: argocd SCRIPT.lua [OBJECT.json]   (without a file the JSON is read from stdin)
//
// The JSON is one object, or an array of objects so that a whole table of test cases costs one
// process. The output is one JSON result per object (an array for an array):
// {"status": ..., "message": ...}, plus "error" when Argo CD could not have used the script's
// answer. With one object an error also makes the exit status 1.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// The health statuses Argo CD accepts from a script (gitops-engine's HealthStatusCode).
var validStatuses = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true,
	"Suspended": true, "Missing": true, "Unknown": true,
}

// Argo CD's answer to a status it does not know.
const invalidHealthStatus = "Lua returned an invalid health status"

type result struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Error   string `json:"error,omitempty"`
}

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "argocd health: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) < 1 || len(args) > 2 {
		return errors.New("usage: argocd SCRIPT.lua [OBJECT.json] (the JSON is read from stdin without a file)")
	}
	script, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	input := stdin
	if len(args) == 2 {
		f, err := os.Open(args[1])
		if err != nil {
			return err
		}
		defer f.Close()
		input = f
	}
	raw, err := io.ReadAll(input)
	if err != nil {
		return err
	}
	value, err := decodeJSON(raw)
	if err != nil {
		return fmt.Errorf("the input is not JSON: %w", err)
	}

	encoder := json.NewEncoder(stdout)
	encoder.SetEscapeHTML(false) // messages quote "<string>:1:" from Lua errors; keep them readable
	switch v := value.(type) {
	case map[string]any:
		r := evaluate(string(script), v)
		if err := encoder.Encode(r); err != nil {
			return err
		}
		if r.Error != "" {
			return errors.New(r.Error)
		}
		return nil
	case []any:
		results := make([]result, 0, len(v))
		for i, item := range v {
			object, ok := item.(map[string]any)
			if !ok {
				return fmt.Errorf("item %d of the input array is not a JSON object", i)
			}
			results = append(results, evaluate(string(script), object))
		}
		return encoder.Encode(results)
	default:
		return errors.New("the input must be a JSON object or an array of objects")
	}
}

// decodeJSON decodes like Kubernetes' unstructured objects, which is what Argo CD converts to Lua:
// integers become int64 and other numbers float64 (encoding/json alone would turn a large
// generation into an imprecise float64).
func decodeJSON(raw []byte) (any, error) {
	decoder := json.NewDecoder(bytes.NewReader(raw))
	decoder.UseNumber()
	var value any
	if err := decoder.Decode(&value); err != nil {
		return nil, err
	}
	if decoder.More() {
		return nil, errors.New("more than one JSON value")
	}
	return convertNumbers(value)
}

func convertNumbers(value any) (any, error) {
	switch v := value.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i, nil
		}
		return v.Float64()
	case []any:
		for i := range v {
			converted, err := convertNumbers(v[i])
			if err != nil {
				return nil, err
			}
			v[i] = converted
		}
	case map[string]any:
		for key, item := range v {
			converted, err := convertNumbers(item)
			if err != nil {
				return nil, err
			}
			v[key] = converted
		}
	}
	return value, nil
}

// evaluate runs script with obj set to object in a fresh state, as Argo CD does for every
// health assessment, and reads its answer.
func evaluate(script string, object map[string]any) result {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := L.CallByParam(lua.P{Fn: L.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return failed(fmt.Errorf("opening the %s library: %w", lib.name, err))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	L.SetContext(ctx)
	L.SetGlobal("obj", toLua(L, object))
	if err := L.DoString(script); err != nil {
		return failed(err)
	}
	// The script's return value is left on top of the stack; Argo CD reads exactly that.
	returned, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return failed(fmt.Errorf("expect table output from Lua script, not %s", L.Get(-1).Type()))
	}
	status, err := field(returned, "status")
	if err != nil {
		return failed(err)
	}
	message, err := field(returned, "message")
	if err != nil {
		return failed(err)
	}
	if !validStatuses[status] {
		return result{Status: "Unknown", Message: invalidHealthStatus}
	}
	return result{Status: status, Message: message}
}

// field reads a string field of the returned table. Argo CD round-trips the table through JSON
// into a struct of strings, so a number or table there is an error, and a missing field is "".
func field(table *lua.LTable, name string) (string, error) {
	switch v := table.RawGetString(name).(type) {
	case *lua.LNilType:
		return "", nil
	case lua.LString:
		return string(v), nil
	default:
		return "", fmt.Errorf("the returned %s is a %s, not a string", name, v.Type())
	}
}

func failed(err error) result {
	return result{Status: "Unknown", Message: err.Error(), Error: err.Error()}
}

// toLua converts a decoded object into Lua values: maps become tables keyed by string, slices
// become sequences starting at index 1, numbers Lua numbers (float64), null and anything else nil.
func toLua(L *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case []any:
		sequence := L.CreateTable(len(v), 0)
		for _, item := range v {
			sequence.Append(toLua(L, item))
		}
		return sequence
	case map[string]any:
		table := L.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetString(key, toLua(L, item))
		}
		return table
	default:
		return lua.LNil
	}
}
