"""Braiins OS (the BOSer generation, X19/X21 Antminers): cgminer API on TCP 4028 plus the
Braiins gRPC API on TCP 50051.

The cgminer side identifies the miner (``version`` names BOSminer, ``devdetails`` the
model) and reports ``summary``, ``devs`` and ``tunerstatus``. The gRPC side speaks the
real protobuf schema through the ``*ServiceBase`` classes pyasic ships: details, stats,
hashboards, cooling, pools, configuration and performance mode for readings;
``PauseMining``, ``ResumeMining``, ``SetPowerTarget`` and ``SetLocateDeviceStatus`` for
control. Every call but ``Login`` needs the token ``Login`` returns (in the initial
metadata header ``authorization``, where Braiins puts it).

Faults on the gRPC side: ``timeout`` never answers, ``malformed`` fails the call with
``INTERNAL`` (a protobuf reply cannot be half-valid JSON), ``refuse`` fails control calls
with ``PERMISSION_DENIED``.

Importing this module imports pyasic (for the protobuf classes), which takes about a
second; the farm imports it only when a miner runs Braiins OS.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING, Any, ClassVar, cast

import grpclib.const
from grpclib import GRPCError, Status
from grpclib.events import RecvRequest, listen
from grpclib.server import Server, Stream
from pyasic.web.braiins_os.proto.braiins.bos.v1 import (
    ActionsServiceBase,
    AuthenticationServiceBase,
    BosVersion,
    ConfigurationServiceBase,
    CoolingServiceBase,
    FanState,
    GetCoolingStateRequest,
    GetCoolingStateResponse,
    GetHashboardsRequest,
    GetHashboardsResponse,
    GetLocateDeviceStatusRequest,
    GetMinerConfigurationRequest,
    GetMinerConfigurationResponse,
    GetMinerDetailsRequest,
    GetMinerDetailsResponse,
    GetMinerStatsRequest,
    GetMinerStatsResponse,
    GetPerformanceModeRequest,
    GetPoolGroupsRequest,
    GetPoolGroupsResponse,
    GigaHashrate,
    Hashboard,
    LocateDeviceStatusResponse,
    LoginRequest,
    LoginResponse,
    MinerBrand,
    MinerIdentity,
    MinerPowerStats,
    MinerServiceBase,
    MinerStatus,
    PauseMiningRequest,
    PauseMiningResponse,
    PerformanceMode,
    PerformanceServiceBase,
    Pool,
    PoolConfiguration,
    PoolGroup,
    PoolGroupConfiguration,
    PoolServiceBase,
    PoolStats,
    Power,
    PowerTargetMode,
    Quota,
    RealHashrate,
    ResumeMiningRequest,
    ResumeMiningResponse,
    SetLocateDeviceStatusRequest,
    SetPowerTargetRequest,
    SetPowerTargetResponse,
    Temperature,
    TemperatureSensor,
    TunerConfiguration,
    TunerMode,
    TunerPerformanceMode,
    WorkSolverStats,
)

from drivers.emulators.cgminer import CgminerFirmware, JsonDict

if TYPE_CHECKING:
    from grpclib._typing import IServerMethodFunc
from drivers.emulators.emulated_miner import POOL_URL, EmulatedMiner
from drivers.emulators.faults import FaultKind
from drivers.emulators.miner_state import FAN_FULL_RPM, HASHBOARDS
from drivers.emulators.rpc_server import RpcServer

GRPC_PORT = 50051
"""TCP port of the Braiins OS gRPC API."""

BOSMINER_VERSION = "bosminer-plus-tuner 0.2.0-7ddb1a9f"
"""cgminer-side firmware banner (contains "BOSminer" for detection)."""

BOS_VERSION = "2024-01-25-0-7ddb1a9f-24.01-plus"
"""Full Braiins OS version; its sixth dash-separated field is the release (24.01)."""

LOGIN_USER = "root"
LOGIN_PASSWORD = "root"
"""Credentials the gRPC ``Login`` accepts (the factory default)."""

TOKEN_TIMEOUT_S = 3600
"""Token lifetime announced by ``Login`` [s]."""

_SERVICE = "/braiins.bos.v1."
PUBLIC_METHODS = frozenset({f"{_SERVICE}AuthenticationService/Login"})
"""gRPC methods callable without a token."""

CONTROL_METHODS = frozenset(
    {
        f"{_SERVICE}ActionsService/PauseMining",
        f"{_SERVICE}ActionsService/ResumeMining",
        f"{_SERVICE}ActionsService/SetLocateDeviceStatus",
        f"{_SERVICE}PerformanceService/SetPowerTarget",
    }
)
"""gRPC methods that change the miner (refused by a ``refuse`` fault)."""


class BraiinsRpcFirmware(CgminerFirmware):
    """The cgminer API of Braiins OS on one emulated Antminer."""

    description: ClassVar[str] = f"BOSminer {BOSMINER_VERSION}"
    pool_keys: ClassVar[tuple[str, ...]] = (
        "POOL",
        "URL",
        "Status",
        "Accepted",
        "Rejected",
        "User",
        "Stratum Active",
    )

    def cmd_version(self, parameter: str | None) -> JsonDict:
        """Firmware and API versions."""
        return self.ok(
            22, "BOSminer versions", VERSION=[{"BOSminer": BOSMINER_VERSION, "API": "3.7"}]
        )

    def cmd_summary(self, parameter: str | None) -> JsonDict:
        """Totals: hashrate [MH/s], uptime [s]."""
        s = self.miner.snapshot()
        mhs = round(s.hashrate_ths * 1e6, 2)
        return self.ok(
            11,
            "Summary",
            SUMMARY=[
                {
                    "Elapsed": int(s.uptime_s),
                    "MHS av": mhs,
                    "MHS 5s": mhs,
                    "MHS 1m": mhs,
                    "MHS 15m": mhs,
                    "Accepted": s.accepted_shares,
                    "Rejected": 0,
                }
            ],
        )

    def cmd_devs(self, parameter: str | None) -> JsonDict:
        """One entry per hashboard: hashrate [MH/s], board temperature [°C]."""
        s = self.miner.snapshot()
        boards = [
            {"ASC": board, **self.devs_fields(board, ths, s)}
            for board, ths in enumerate(s.board_hashrate_ths)
        ]
        return self.ok(9, f"{len(boards)} ASC(s)", DEVS=boards)

    def cmd_tunerstatus(self, parameter: str | None) -> JsonDict:
        """Autotuner state per hashchain (all stable)."""
        s = self.miner.snapshot()
        chains = [
            {
                "HashchainIndex": board + 6,
                "Status": "Stable",
                "PowerLimitWatt": round(s.power_limit_w / HASHBOARDS),
                "ApproximatePowerConsumptionWatt": round(s.power_w / HASHBOARDS),
            }
            for board in range(HASHBOARDS)
        ]
        return self.ok(
            63,
            "Tuner Status",
            TUNERSTATUS=[
                {
                    "PowerLimit": round(s.power_limit_w),
                    "ApproximateMinerPowerConsumption": round(s.power_w),
                    "TunerChainStatus": chains,
                }
            ],
        )


class BraiinsGrpcState:
    """What the gRPC services of one miner share: the miner, its token, its locate LED."""

    def __init__(self, miner: EmulatedMiner) -> None:
        self.miner = miner
        self.token = hashlib.sha256(f"{miner.address}/bos-token".encode()).hexdigest()[:24]
        self.locate_enabled = False


class _MinerService:
    """Base of the gRPC services of one miner: they share one :class:`BraiinsGrpcState`."""

    def __init__(self, state: BraiinsGrpcState) -> None:
        self.state = state


class _Authentication(_MinerService, AuthenticationServiceBase):
    """``Login``: the token goes back in the initial metadata, as Braiins OS sends it."""

    async def _login(self, stream: Stream[LoginRequest, LoginResponse]) -> None:
        request = await stream.recv_message()
        if request is None or (request.username, request.password) != (LOGIN_USER, LOGIN_PASSWORD):
            raise GRPCError(Status.UNAUTHENTICATED, "invalid username or password")
        await stream.send_initial_metadata(metadata={"authorization": self.state.token})
        await stream.send_message(LoginResponse(token=self.state.token, timeout_s=TOKEN_TIMEOUT_S))

    def __mapping__(self) -> dict[str, grpclib.const.Handler]:
        return {
            f"{_SERVICE}AuthenticationService/Login": grpclib.const.Handler(
                self._login, grpclib.const.Cardinality.UNARY_UNARY, LoginRequest, LoginResponse
            )
        }


class _Actions(_MinerService, ActionsServiceBase):
    """Pause / resume mining and the locate LED."""

    async def pause_mining(self, pause_mining_request: PauseMiningRequest) -> PauseMiningResponse:
        already = not self.state.miner.snapshot().hashing
        self.state.miner.sleep()
        return PauseMiningResponse(already_paused=already)

    async def resume_mining(
        self, resume_mining_request: ResumeMiningRequest
    ) -> ResumeMiningResponse:
        already = self.state.miner.snapshot().hashing
        self.state.miner.wake()
        return ResumeMiningResponse(already_mining=already)

    async def set_locate_device_status(
        self, set_locate_device_status_request: SetLocateDeviceStatusRequest
    ) -> LocateDeviceStatusResponse:
        self.state.locate_enabled = bool(set_locate_device_status_request.enable)
        return LocateDeviceStatusResponse(enabled=self.state.locate_enabled)

    async def get_locate_device_status(
        self, get_locate_device_status_request: GetLocateDeviceStatusRequest
    ) -> LocateDeviceStatusResponse:
        return LocateDeviceStatusResponse(enabled=self.state.locate_enabled)


class _Performance(_MinerService, PerformanceServiceBase):
    """Power target: set (clamped to the model's range) and read back."""

    async def set_power_target(
        self, set_power_target_request: SetPowerTargetRequest
    ) -> SetPowerTargetResponse:
        requested = set_power_target_request.power_target.watt
        if requested <= 0:
            raise GRPCError(Status.INVALID_ARGUMENT, f"power target must be > 0 W, got {requested}")
        applied = self.state.miner.set_power_limit_w(float(requested))
        return SetPowerTargetResponse(power_target=Power(watt=round(applied)))

    async def get_active_performance_mode(
        self, get_performance_mode_request: GetPerformanceModeRequest
    ) -> PerformanceMode:
        watts = round(self.state.miner.snapshot().power_limit_w)
        return PerformanceMode(
            tuner_mode=TunerPerformanceMode(
                power_target=PowerTargetMode(power_target=Power(watt=watts))
            )
        )


class _Cooling(_MinerService, CoolingServiceBase):
    """Fan speeds [rpm] and the hottest chip [°C]."""

    async def get_cooling_state(
        self, get_cooling_state_request: GetCoolingStateRequest
    ) -> GetCoolingStateResponse:
        s = self.state.miner.snapshot()
        fans = [
            FanState(
                position=k,
                rpm=round(s.fan_rpm),
                target_speed_ratio=s.fan_rpm / FAN_FULL_RPM,
            )
            for k in range(self.state.miner.identity.fans)
        ]
        hottest = TemperatureSensor(id=0, temperature=Temperature(degree_c=s.chip_temp_c))
        return GetCoolingStateResponse(fans=fans, highest_temperature=hottest)


class _Miner(_MinerService, MinerServiceBase):
    """Miner details, power stats and hashboards."""

    async def get_miner_details(
        self, get_miner_details_request: GetMinerDetailsRequest
    ) -> GetMinerDetailsResponse:
        miner = self.state.miner
        s = miner.snapshot()
        name = miner.identity.reported_model.removeprefix("Bitmain ")
        return GetMinerDetailsResponse(
            uid=miner.serial_number,
            miner_identity=MinerIdentity(brand=MinerBrand.ANTMINER, name=name, miner_model=name),
            bos_version=BosVersion(current=BOS_VERSION, major="24.01", bos_plus=True),
            hostname=miner.hostname,
            mac_address=miner.mac,
            sticker_hashrate=GigaHashrate(gigahash_per_second=miner.spec.hashrate_ths * 1000.0),
            bosminer_uptime_s=int(s.uptime_s),
            system_uptime_s=int(s.uptime_s),
            status=MinerStatus.NORMAL if s.hashing else MinerStatus.PAUSED,
            serial_number=miner.serial_number,
        )

    async def get_miner_stats(
        self, get_miner_stats_request: GetMinerStatsRequest
    ) -> GetMinerStatsResponse:
        s = self.state.miner.snapshot()
        return GetMinerStatsResponse(
            pool_stats=PoolStats(accepted_shares=s.accepted_shares),
            miner_stats=_solver_stats(s.hashrate_ths),
            power_stats=MinerPowerStats(approximated_consumption=Power(watt=round(s.power_w))),
        )

    async def get_hashboards(
        self, get_hashboards_request: GetHashboardsRequest
    ) -> GetHashboardsResponse:
        miner = self.state.miner
        s = miner.snapshot()
        boards = [
            Hashboard(
                id=str(board + 1),
                enabled=True,
                chips_count=miner.identity.chips_per_board,
                board_temp=Temperature(degree_c=s.board_temp_c),
                highest_chip_temp=TemperatureSensor(
                    id=board, temperature=Temperature(degree_c=s.chip_temp_c)
                ),
                stats=_solver_stats(ths),
                serial_number=f"{miner.serial_number}B{board}",
            )
            for board, ths in enumerate(s.board_hashrate_ths)
        ]
        return GetHashboardsResponse(hashboards=boards)


class _Pools(_MinerService, PoolServiceBase):
    """The one emulated pool group (clients need at least one)."""

    async def get_pool_groups(
        self, get_pool_groups_request: GetPoolGroupsRequest
    ) -> GetPoolGroupsResponse:
        s = self.state.miner.snapshot()
        pool = Pool(
            uid="0",
            url=POOL_URL,
            user=self.state.miner.pool_user,
            enabled=True,
            alive=True,
            active=s.hashing,
            stats=PoolStats(accepted_shares=s.accepted_shares),
        )
        return GetPoolGroupsResponse(
            pool_groups=[PoolGroup(name="Default", quota=Quota(value=1), pools=[pool])]
        )


class _Configuration(_MinerService, ConfigurationServiceBase):
    """Pools and the tuner in power-target mode."""

    async def get_miner_configuration(
        self, get_miner_configuration_request: GetMinerConfigurationRequest
    ) -> GetMinerConfigurationResponse:
        watts = round(self.state.miner.snapshot().power_limit_w)
        pool = PoolConfiguration(
            uid="0",
            url=POOL_URL,
            user=self.state.miner.pool_user,
            password="x",
            enabled=True,
        )
        return GetMinerConfigurationResponse(
            pool_groups=[
                PoolGroupConfiguration(uid="0", name="Default", quota=Quota(value=1), pools=[pool])
            ],
            tuner=TunerConfiguration(
                enabled=True, tuner_mode=TunerMode.POWER_TARGET, power_target=Power(watt=watts)
            ),
        )


def _solver_stats(hashrate_ths: float) -> WorkSolverStats:
    ghs = GigaHashrate(gigahash_per_second=hashrate_ths * 1000.0)
    return WorkSolverStats(real_hashrate=RealHashrate(last_5_s=ghs, last_1_m=ghs))


def _failing(status: Status, message: str) -> IServerMethodFunc:
    async def fail(stream: Stream[Any, Any]) -> None:
        raise GRPCError(status, message)

    return cast("IServerMethodFunc", fail)


async def _hang(stream: Stream[Any, Any]) -> None:
    await asyncio.Event().wait()  # until the client gives up or the server stops


_never_answer = cast("IServerMethodFunc", _hang)


class BraiinsGrpcServer:
    """The gRPC API of one emulated miner on ``host:port``."""

    def __init__(self, miner: EmulatedMiner, port: int = GRPC_PORT) -> None:
        self.state = BraiinsGrpcState(miner)
        self.host = miner.address
        self.port = port
        self._server: Server | None = None

    async def start(self) -> None:
        """Bind and listen; OSError (naming the address) when the address is taken."""
        services = [
            cls(self.state)
            for cls in (_Authentication, _Actions, _Performance, _Cooling, _Miner, _Pools)
        ]
        server = Server([*services, _Configuration(self.state)])
        listen(server, RecvRequest, self._on_request)
        try:
            await server.start(self.host, self.port)
        except OSError as error:
            raise OSError(
                error.errno, f"cannot listen on {self.host}:{self.port}: {error.strerror}"
            ) from error
        self._server = server

    async def stop(self) -> None:
        """Stop listening and cancel calls in flight."""
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None

    async def _on_request(self, event: RecvRequest) -> None:
        """Apply faults and check the token before a call runs."""
        fault = self.state.miner.fault()
        method = event.method_name
        if fault is not None and fault.kind == FaultKind.TIMEOUT:
            event.method_func = _never_answer
        elif fault is not None and fault.kind == FaultKind.MALFORMED:
            event.method_func = _failing(Status.INTERNAL, "malformed reply")
        elif method in PUBLIC_METHODS:
            return
        elif event.metadata.get("authorization") != self.state.token:
            event.method_func = _failing(Status.UNAUTHENTICATED, "missing or invalid token")
        elif fault is not None and fault.kind == FaultKind.REFUSE and method in CONTROL_METHODS:
            event.method_func = _failing(Status.PERMISSION_DENIED, "control is disabled")


def braiins_endpoints(
    miner: EmulatedMiner, rpc_port: int, grpc_port: int = GRPC_PORT
) -> list[RpcServer | BraiinsGrpcServer]:
    """The listeners of one Braiins OS miner: cgminer API and gRPC API."""
    return [
        RpcServer(BraiinsRpcFirmware(miner), miner.address, rpc_port),
        BraiinsGrpcServer(miner, grpc_port),
    ]
