"""Supervisor's XML-RPC protocol on `POST /RPC2`: parsing, dispatch, roles, system.*, faults.

The methods themselves (the `supervisor.*` namespace) are in rpcinterface.py; this module
knows nothing of processes. What it promises:

- Parsing: defusedxml's expat parser feeds the standard library's xmlrpc.client
  Unmarshaller, with DTDs forbidden: no entity is ever expanded and no external entity is
  ever fetched, and a billion-laughs body is refused at its first declaration. The guard in
  front (security.py) caps the body at 1 MiB. Malformed XML or parameters are a fault
  (INCORRECT_PARAMETERS), never a 500.
- Dispatch: an explicit table of method names -> `Method` (handler, the role it needs, its
  signature, its help). Nothing is looked up by attribute: a dotted name such as
  `supervisor.supervisord.options.warnings.linecache.os.system` (CVE-2017-11610) is not in
  the table, so it is UNKNOWN_METHOD and runs nothing.
- Roles: a caller who gave no credentials and whose role is too low is answered HTTP 401
  with the guard's WWW-Authenticate, as supervisord answers when it has a password:
  supervisorctl then asks for credentials (interactive) or says "Server requires
  authentication". A caller who did log in gets a FAILED fault naming the role needed.
  FAILED because it is Supervisor's code for "this call did not happen" without a more
  precise meaning: supervisorctl prints its text for stop, signal and the group and `all`
  commands, while the precise codes (BAD_NAME, NOT_RUNNING...) would make it print
  something false ("no such process").
- Calls that change something are audited, one entry per call (in a multicall too), with
  their outcome; refused ones too.
- system.multicall runs each call alone, with its own role check, and puts a fault in the
  failing call's slot, as supervisord does (successful slots hold the bare value, as in
  supervisord, not a one-item array). A caller without credentials gets 401 before any call
  runs when one of the calls needs more than its role: a client that retries with
  credentials must not run the others twice.
- Responses: the text xmlrpc.client.dumps writes, without allow_none as in supervisord (no
  method returns None; None is an internal error). For the types answers hold, `marshal`
  writes it five times faster (getAllProcessInfo of 500 processes: 2 ms instead of 10), and a
  test holds the two equal; anything else, and faults, go through dumps itself. Characters
  XML 1.0 cannot carry (a program's escape sequences in its log) become U+FFFD, so that
  every answer parses.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import xmlrpc.client
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from defusedxml.xmlrpc import DefusedExpatParser
from starlette.requests import Request
from starlette.responses import Response

from sentinel.api.security import audit, principal_of, refusal
from sentinel.auth import Role

log = logging.getLogger(__name__)

MULTICALL = "system.multicall"
MAX_MULTICALL = 256  # calls in one multicall: a viewer's 1 MiB of calls must not stall the loop
MAX_AUDIT_TARGET = 200  # characters of a call's target kept in the audit log
# What XML 1.0 cannot carry, even as a character reference.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class Faults(enum.IntEnum):
    """Supervisor's fault codes (supervisor/xmlrpc.py), which its clients act on."""

    UNKNOWN_METHOD = 1
    INCORRECT_PARAMETERS = 2
    BAD_ARGUMENTS = 3
    SIGNATURE_UNSUPPORTED = 4
    SHUTDOWN_STATE = 6
    BAD_NAME = 10
    BAD_SIGNAL = 11
    NO_FILE = 20
    NOT_EXECUTABLE = 21
    FAILED = 30
    ABNORMAL_TERMINATION = 40
    SPAWN_ERROR = 50
    ALREADY_STARTED = 60
    NOT_RUNNING = 70
    SUCCESS = 80
    ALREADY_ADDED = 90
    STILL_RUNNING = 91
    CANT_REREAD = 92


class RPCFault(Exception):
    """A call that failed, as Supervisor reports it: a code, and "NAME" or "NAME: detail"."""

    def __init__(self, code: Faults, detail: str = "") -> None:
        self.code = code
        self.text = f"{code.name}: {detail}" if detail else code.name
        super().__init__(self.text)

    def to_struct(self) -> dict[str, object]:
        """The fault as one slot of a multicall's answer."""
        return {"faultCode": int(self.code), "faultString": self.text}


_ACCEPTS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "int": (int,),
    "boolean": (bool, int),  # some clients send 0 and 1
    "array": (list,),
    "struct": (dict,),
}


@dataclass(frozen=True)
class Param:
    kind: str  # the XML-RPC type, as methodSignature names it
    name: str
    also: tuple[type, ...] = ()  # other Python types taken (a signal as a number)

    def accepts(self, value: object) -> bool:
        if isinstance(value, bool) and self.kind != "boolean":
            return False  # a bool is an int to Python, not to XML-RPC
        return isinstance(value, _ACCEPTS[self.kind] + self.also)


@dataclass(frozen=True)
class Method:
    """One callable method: what runs, who may call it, and what it says about itself."""

    handler: Callable[..., Awaitable[object]]
    role: Role
    returns: str  # the XML-RPC type of the result
    params: tuple[Param, ...] = ()
    help: str = ""
    required: int | None = None  # parameters that must be given (None: all of them)
    # For calls that change something: the audit entry's target, "{0}" being the first
    # parameter. None: not audited (it changes nothing).
    audit: str | None = None

    def signature(self) -> list[str]:
        return [self.returns, *(p.kind for p in self.params)]

    def arguments(self, params: tuple[Any, ...]) -> tuple[Any, ...]:
        """`params` if they fit the signature, else INCORRECT_PARAMETERS."""
        required = len(self.params) if self.required is None else self.required
        if not required <= len(params) <= len(self.params):
            expected = (
                f"{required}" if required == len(self.params) else f"{required}-{len(self.params)}"
            )
            raise RPCFault(
                Faults.INCORRECT_PARAMETERS, f"expected {expected} parameters, got {len(params)}"
            )
        for value, param in zip(params, self.params, strict=False):
            if not param.accepts(value):
                raise RPCFault(
                    Faults.INCORRECT_PARAMETERS,
                    f"{param.name}: expected {param.kind}, got {_xml_type(value)}",
                )
        return params


class XmlRpc:
    """The `/RPC2` endpoint over a table of methods (the `system.*` ones are added here)."""

    def __init__(self, methods: Mapping[str, Method]) -> None:
        viewer = Role.VIEWER
        name = (Param("string", "name"),)
        self._methods: dict[str, Method] = {
            **methods,
            "system.listMethods": Method(
                self._list_methods, viewer, "array", help="The names of the methods, sorted."
            ),
            "system.methodHelp": Method(
                self._method_help, viewer, "string", name, "What the method named does."
            ),
            "system.methodSignature": Method(
                self._method_signature,
                viewer,
                "array",
                name,
                "The method's signature: [return type, parameter types...].",
            ),
            MULTICALL: Method(
                self._multicall_runs_in_call,
                viewer,
                "array",
                (Param("array", "calls"),),
                "Run each {'methodName': string, 'params': array} of `calls` in turn; each "
                "slot of the answer is the call's value or its fault "
                "{'faultCode': int, 'faultString': string}.",
            ),
        }

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()  # read by the guard already, within its limits
        try:
            name, params = parse_call(body)
        except RPCFault as fault:
            return _answer(fault)
        principal = principal_of(request)
        needed = self._role_needed(name, params)
        if not principal.authenticated and principal.role < needed:
            refused = refusal(request, needed)  # 401: credentials are wanted
            assert refused is not None
            return refused
        try:
            value = await self._call(request, name, params)
        except RPCFault as fault:
            return _answer(fault)
        except Exception:
            log.exception("XML-RPC %s failed", name[:100])
            return _answer(_internal_error())
        return _answer(value)

    def _role_needed(self, name: str, params: tuple[Any, ...]) -> Role:
        """The least role the call can need: the method's (every call's, in a multicall).
        An unknown method needs a viewer: who may not even read gets a 401, not a hint."""
        needed = Role.VIEWER
        method = self._methods.get(name)
        if method is not None:
            needed = max(needed, method.role)
        if name == MULTICALL and params and isinstance(params[0], list):
            for call in params[0]:
                inner = call.get("methodName") if isinstance(call, dict) else None
                if isinstance(inner, str) and inner in self._methods:
                    needed = max(needed, self._methods[inner].role)
        return needed

    async def _call(self, request: Request, name: str, params: tuple[Any, ...]) -> object:
        method = self._methods.get(name)
        if method is None:
            raise RPCFault(Faults.UNKNOWN_METHOD)
        principal = principal_of(request)
        if principal.role < method.role:
            refused = (
                f"{principal.name} ({principal.role.label}) may not call {name}: it needs the "
                f"{method.role.label} role"
            )
            if method.audit is not None:
                audit(request, name, _target(method, params), f"refused: {refused}")
            raise RPCFault(Faults.FAILED, refused)
        arguments = method.arguments(params)
        if name == MULTICALL:
            return await self._multicall(request, arguments[0])
        if method.audit is None:
            return await method.handler(*arguments)
        target = _target(method, arguments)
        try:
            value = await method.handler(*arguments)
        except RPCFault as fault:
            audit(request, name, target, f"fault: {fault.text}")
            raise
        audit(request, name, target, _outcome(value))
        return value

    async def _multicall(self, request: Request, calls: list[Any]) -> list[object]:
        if len(calls) > MAX_MULTICALL:
            raise RPCFault(
                Faults.INCORRECT_PARAMETERS, f"at most {MAX_MULTICALL} calls in one multicall"
            )
        results: list[object] = []
        for call in calls:
            try:
                name, params = _one_call(call)
                results.append(await self._call(request, name, params))
            except RPCFault as fault:
                results.append(fault.to_struct())
            except Exception:
                log.exception("XML-RPC multicall failed")
                results.append(_internal_error().to_struct())
            await asyncio.sleep(0)  # one multicall does not hold the loop for all its calls
        return results

    # --- system.* ---------------------------------------------------------------------------

    async def _multicall_runs_in_call(self, calls: list[Any]) -> list[object]:
        """Never called: _call runs system.multicall itself, with the request its calls need
        (the table entry is for the checks and system.methodHelp)."""
        raise AssertionError("system.multicall runs in _call")

    async def _list_methods(self) -> list[str]:
        return sorted(self._methods)

    async def _method_help(self, name: str) -> str:
        method = self._methods.get(name)
        if method is None:
            raise RPCFault(Faults.SIGNATURE_UNSUPPORTED)
        return method.help

    async def _method_signature(self, name: str) -> list[str]:
        method = self._methods.get(name)
        if method is None:
            raise RPCFault(Faults.SIGNATURE_UNSUPPORTED)
        return method.signature()


def parse_call(body: bytes) -> tuple[str, tuple[Any, ...]]:
    """A methodCall's name and parameters; INCORRECT_PARAMETERS for anything else."""
    unmarshaller = xmlrpc.client.Unmarshaller(use_builtin_types=True)
    parser = DefusedExpatParser(unmarshaller, forbid_dtd=True)
    try:
        parser.feed(body)
        parser.close()
        params = unmarshaller.close()
    # Whatever a malformed document makes the parser or the unmarshaller raise (ExpatError,
    # defusedxml's refusals, ResponseError, a bad number, an odd struct...) means one thing.
    except Exception as exc:
        raise RPCFault(
            Faults.INCORRECT_PARAMETERS, f"not an XML-RPC methodCall: {_reason(exc)}"
        ) from None
    name = unmarshaller.getmethodname()
    if not name:
        raise RPCFault(Faults.INCORRECT_PARAMETERS, "no methodName")
    return name, params


def _one_call(call: object) -> tuple[str, tuple[Any, ...]]:
    if not isinstance(call, dict):
        raise RPCFault(Faults.INCORRECT_PARAMETERS, "a call is a struct")
    name = call.get("methodName")
    params = call.get("params", [])
    if not isinstance(name, str) or not name:
        raise RPCFault(Faults.INCORRECT_PARAMETERS, "No methodName")
    if name == MULTICALL:
        raise RPCFault(Faults.INCORRECT_PARAMETERS, "Recursive system.multicall forbidden")
    if not isinstance(params, list):
        raise RPCFault(Faults.INCORRECT_PARAMETERS, "params: expected array")
    return name, tuple(params)


def _answer(value: object) -> Response:
    """The methodResponse carrying `value`, or the fault if it is an RPCFault."""
    try:
        if isinstance(value, RPCFault):
            text = _dumps(xmlrpc.client.Fault(int(value.code), value.text))
        else:
            text = marshal(value)
    except (TypeError, OverflowError):  # a value XML-RPC cannot carry: a bug, not the caller's
        log.exception("XML-RPC answer cannot be marshalled")
        fault = _internal_error()
        text = _dumps(xmlrpc.client.Fault(int(fault.code), fault.text))
    return Response(text.encode(), media_type="text/xml")


def marshal(value: object) -> str:
    """The methodResponse for `value`: the text xmlrpc.client.dumps writes (tests hold the
    two equal), but five times faster for the types answers hold, which matters for
    getAllProcessInfo (500 processes: 2 ms, where dumps takes 10). Other types go through
    dumps itself."""
    out = ["<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n"]
    try:
        _dump(value, out.append)
    except _Unhandled:
        return _dumps((value,))
    out.append("</param>\n</params>\n</methodResponse>\n")
    return "".join(out)


def _dumps(value: xmlrpc.client.Fault | tuple[Any, ...]) -> str:
    """xmlrpc.client.dumps without allow_none, as supervisord, and with what XML cannot carry
    replaced."""
    return _NOT_XML.sub("\ufffd", xmlrpc.client.dumps(value, methodresponse=True))


class _Unhandled(Exception):
    """A type `_dump` leaves to xmlrpc.client.dumps."""


Write = Callable[[str], object]
_MEMBERS: dict[str, str] = {}  # struct keys, written once: answers use a few dozen


def _dump(value: object, write: Write) -> None:
    # By exact type, as xmlrpc.client.Marshaller dispatches (it refuses subclasses).
    writer = _WRITERS.get(type(value))
    if writer is None:
        raise _Unhandled
    writer(value, write)


# What xmlrpc.client.Marshaller writes for each type, character for character.


def _dump_str(value: str, write: Write) -> None:
    write(f"<value><string>{_escape(value)}</string></value>\n")


def _dump_int(value: int, write: Write) -> None:
    if not -(2**31) <= value <= 2**31 - 1:
        raise OverflowError("int exceeds XML-RPC limits")
    write(f"<value><int>{value}</int></value>\n")


def _dump_bool(value: bool, write: Write) -> None:
    write(f"<value><boolean>{1 if value else 0}</boolean></value>\n")


def _dump_float(value: float, write: Write) -> None:
    write(f"<value><double>{value!r}</double></value>\n")


def _dump_dict(value: dict[Any, Any], write: Write) -> None:
    write("<value><struct>\n")
    for key, item in value.items():
        member = _MEMBERS.get(key)
        if member is None:
            if type(key) is not str:
                raise TypeError("dictionary key must be string")
            member = f"<member>\n<name>{_escape(key)}</name>\n"
            if len(_MEMBERS) < 1000:
                _MEMBERS[key] = member
        kind = type(item)
        if kind is str:  # the common members, written in one piece (getAllProcessInfo)
            write(f"{member}<value><string>{_escape(item)}</string></value>\n</member>\n")
        elif kind is int and -(2**31) <= item <= 2**31 - 1:
            write(f"{member}<value><int>{item}</int></value>\n</member>\n")
        else:
            write(member)
            _dump(item, write)
            write("</member>\n")
    write("</struct></value>\n")


def _dump_list(value: list[Any], write: Write) -> None:
    write("<value><array><data>\n")
    for item in value:
        _dump(item, write)
    write("</data></array></value>\n")


_WRITERS: dict[type, Callable[[Any, Write], None]] = {
    str: _dump_str,
    int: _dump_int,
    bool: _dump_bool,
    float: _dump_float,
    dict: _dump_dict,
    list: _dump_list,
}


def _escape(text: str) -> str:
    if not text.isprintable():  # rare: newlines, tabs, escape sequences, some non-ASCII
        text = _NOT_XML.sub("\ufffd", text)
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def _internal_error() -> RPCFault:
    return RPCFault(Faults.FAILED, "internal error (see sentinel's log)")


def _target(method: Method, params: tuple[Any, ...]) -> str:
    assert method.audit is not None
    try:
        target = method.audit.format(*params)
    except IndexError:  # a refused call's parameters are not checked: too few of them
        target = ""
    return target[:MAX_AUDIT_TARGET]


def _outcome(value: object) -> str:
    """An audit result: "ok", or the processes that failed in a group's answer."""
    if isinstance(value, list):
        failed = [
            f"{r.get('name')} ({Faults(r['status']).name})"
            for r in value
            if isinstance(r, dict) and r.get("status", Faults.SUCCESS) != Faults.SUCCESS
        ]
        if failed:
            return f"failed: {', '.join(failed)}"
    return "ok"


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]


def _xml_type(value: object) -> str:
    names = {bool: "boolean", int: "int", float: "double", str: "string", bytes: "base64"}
    names |= {list: "array", dict: "struct", type(None): "nil"}
    return names.get(type(value), type(value).__name__)
