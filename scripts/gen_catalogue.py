#!/usr/bin/env python3
"""Generate config/catalogue.toml from the AADSTS code table.

Usage: scripts/gen_catalogue.py [TSV] > config/catalogue.toml
       (TSV defaults to tests/fixtures/aadsts-codes.tsv, a copy of ../shared/catalogue/aadsts-codes.tsv)

The TSV supplies every code, Microsoft's identifier name, the category, the actor and the
one-line meaning. Everything Passport-specific (titles, remediation, message patterns,
examples) lives in the tables below, so regenerating after a TSV update keeps the hand
written parts. The generated file is committed; the daemon never runs this script.
"""

import csv
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TSV = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests" / "fixtures" / "aadsts-codes.tsv"

TRACE = "\\r\\nTrace ID: 0b5a2c1e-7d2f-4a8e-9b1c-2f0d4e6a8b00\\r\\nCorrelation ID: 6f1e9d2a-3c4b-4e5f-8a7b-1c2d3e4f5a6b\\r\\nTimestamp: 2026-03-04 16:15:02Z"
APP = "'00000003-0000-0000-c000-000000000000'"


def body(code, text, error="invalid_grant", suberror=None):
    """A realistic token-endpoint error body as Passport logs it."""
    sub = f',"suberror":"{suberror}"' if suberror else ""
    return (
        f'{{"error":"{error}","error_description":"AADSTS{code}: {text}{TRACE}",'
        f'"error_codes":[{code}],"timestamp":"2026-03-04 16:15:02Z",'
        f'"trace_id":"0b5a2c1e-7d2f-4a8e-9b1c-2f0d4e6a8b00",'
        f'"correlation_id":"6f1e9d2a-3c4b-4e5f-8a7b-1c2d3e4f5a6b",'
        f'"error_uri":"https://login.microsoftonline.com/error?code={code}"{sub}}}'
    )


EXCLUDE_MFA = (
    "Passport signs in with the OAuth password grant (ROPC), which can never answer an MFA "
    "challenge. Exclude the Passport app registration from every MFA requirement that applies "
    "to these users: a Conditional Access exclusion for the app, per-user MFA turned off for "
    "them, or (if the tenant uses security defaults) moving to Conditional Access policies that "
    "exclude it. Otherwise switch the Passport library item to Web Login, which can do MFA."
)

CA_CHECK = (
    "Open the failed sign-in in the Entra sign-in log, Conditional Access tab, to see which "
    "policy applied; exclude the Passport app registration from that policy or adjust its "
    "conditions. "
)

DEVICE = (
    "A Conditional Access grant requires a compliant, joined or managed device, but the "
    "password grant carries no device identity, so it can never be satisfied from the login "
    "window. Exclude the Passport app registration from device-based grant controls (or use "
    "Web Login)."
)

# code -> dict(title, remediation, severity, patterns, oauth_errors, priority, examples,
#               counter_examples). Every Passport-relevant code is listed here.
RELEVANT = {
    50076: dict(
        title="MFA required",
        severity="high",
        remediation=EXCLUDE_MFA,
        patterns=[
            "you must use multi-factor authentication to access",
            "due to a configuration change made by your administrator, or because you moved to a new location",
        ],
        text=f"Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access {APP}.",
        suberror="basic_action",
        bare=f"Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access {APP}.",
        counter=[f"Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multi-factor authentication to access {APP}."],
    ),
    50126: dict(
        title="Invalid username or password",
        severity="low",
        remediation=(
            "Have the user re-enter the password (Passport needs the full user name and the "
            "current cloud password; leading or trailing spaces are rejected). If the failure "
            "persists for every user of a whole domain, check whether that domain is federated "
            "(AD FS or another identity provider): the password grant cannot validate federated "
            "passwords unless password hash sync is enabled and a Home Realm Discovery policy "
            "with AllowCloudPasswordValidation is applied to the Passport app. List such domains "
            "in federated_domains so passportd reports them as federation_unsupported."
        ),
        patterns=[
            "error validating credentials due to invalid username or password",
            "invalid username or password",
        ],
        text="Error validating credentials due to invalid username or password.",
        bare="Error validating credentials due to invalid username or password.",
    ),
    7000218: dict(
        title="Public client flows disabled",
        severity="critical",
        remediation=(
            "Entra treats the Passport app registration as a confidential client and expects a "
            "secret. In the Entra admin center open the app registration, Authentication, and set "
            "\"Allow public client flows\" (mobile and desktop flows) to Yes, then save. No "
            "client secret is needed for Passport."
        ),
        patterns=[
            "must contain the following parameter: 'client_assertion' or 'client_secret'",
            "must contain the following parameter: 'client_secret or client_assertion'",
        ],
        priority=5,
        text="The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        error="invalid_client",
        bare="The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    ),
    50079: dict(
        title="MFA registration required",
        severity="high",
        remediation=(
            "Policy requires MFA but the user has no MFA method registered, and the password "
            "grant cannot run the registration. Either exclude the Passport app registration from "
            "the MFA requirement, have the user register security info in a browser "
            "(https://aka.ms/mysecurityinfo) and then fix the exclusion, or switch Passport to Web Login."
        ),
        patterns=[
            "you must enroll in multi-factor authentication",
            "the user is required to use multi-factor authentication",
        ],
        priority=10,
        text=f"Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multi-factor authentication to access {APP}.",
        suberror="basic_action",
        bare="The user is required to use multi-factor authentication to access this resource.",
    ),
    50072: dict(
        title="MFA enrollment required",
        severity="high",
        remediation=(
            "The user must register for MFA interactively, which the password grant cannot do. "
            "Exclude the Passport app registration from the MFA requirement, or have the user "
            "register security info in a browser first, or switch Passport to Web Login."
        ),
        text="Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multi-factor authentication to access the application.",
        suberror="basic_action",
    ),
    53004: dict(
        title="MFA registration blocked",
        severity="high",
        remediation=(
            "The user must register MFA first but registration is blocked (risk or a pending "
            "registration). Remediate the user's risk in Identity Protection or let them register "
            "from a trusted location, and exclude the Passport app registration from the MFA "
            "requirement (or use Web Login)."
        ),
        text="Proof up is required for this user but the user is blocked from registering due to risk.",
    ),
    50074: dict(
        title="Strong authentication required",
        severity="high",
        remediation=EXCLUDE_MFA,
        patterns=["strong authentication is required"],
        text="Strong Authentication is required.",
        bare="Strong Authentication is required.",
    ),
    500121: dict(
        title="MFA not completed",
        severity="high",
        remediation=EXCLUDE_MFA,
        patterns=["authentication failed during strong authentication request"],
        text="Authentication failed during strong authentication request.",
        bare="Authentication failed during strong authentication request.",
    ),
    50158: dict(
        title="External security challenge",
        severity="high",
        remediation=(
            "A Conditional Access control (third-party MFA, custom control or terms of use) "
            "demands an interactive step the password grant cannot perform. Exclude the Passport "
            "app registration from that policy, or switch Passport to Web Login."
        ),
        patterns=["external security challenge (?:was )?not satisfied"],
        text="External security challenge not satisfied. User will be redirected to another page or authentication provider to satisfy additional authentication challenges.",
        bare="External security challenge not satisfied.",
    ),
    53003: dict(
        title="Blocked by Conditional Access",
        severity="high",
        remediation=CA_CHECK + "If the block is intended (e.g. a location policy), nothing in Passport can bypass it.",
        patterns=["access has been blocked by conditional access policies"],
        text="Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
        bare="Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
    ),
    530032: dict(
        title="Blocked by security policy",
        severity="high",
        remediation=CA_CHECK + "A tenant-level security policy blocked the request; review it with the tenant's security team.",
        text="User blocked due to conditional access security policies.",
    ),
    50131: dict(
        title="Conditional Access failed",
        severity="high",
        remediation=CA_CHECK + "This catch-all can also mean device state or suspicious activity; read the failure reason in the sign-in log.",
        text="Device is not in required device state or the request was blocked due to suspicious activity, access policy, or security policy decisions.",
    ),
    530035: dict(
        title="Blocked by security defaults",
        severity="high",
        remediation=(
            "Security defaults blocked the sign-in and cannot be tuned per app. Either turn off "
            "security defaults and express the same protection with Conditional Access policies "
            "that exclude the Passport app registration, or switch Passport to Web Login."
        ),
        patterns=["access has been blocked by security defaults"],
        text="Access has been blocked by security defaults. This is due to the request using legacy auth or being deemed unsafe by security defaults policies.",
        bare="Access has been blocked by security defaults.",
    ),
    50005: dict(
        title="Device platform not allowed",
        severity="high",
        remediation=CA_CHECK + "The policy's device-platform condition excludes macOS (or an unknown platform, which is what the password grant reports); include macOS or exclude the Passport app.",
        text="User tried to log in to a device from a platform that's currently not supported through Conditional Access policy.",
    ),
    53002: dict(
        title="Not an approved client app",
        severity="high",
        remediation=CA_CHECK + "The \"require approved client app\" or app-protection grant cannot be met by the password grant; exclude the Passport app registration from it.",
        text="Application used is not an approved app for conditional access.",
    ),
    53000: dict(title="Compliant device required", severity="high", remediation=DEVICE,
                patterns=["device is not in required device state"],
                text="Device is not in required device state: compliant. Conditional Access policy requires a compliant device, and the device is not compliant. The user must enroll their device with an approved MDM provider like Intune.",
                bare="Device is not in required device state: compliant."),
    53001: dict(title="Domain-joined device required", severity="high", remediation=DEVICE,
                text="Device is not in required device state: domain joined."),
    50097: dict(title="Device authentication required", severity="high", remediation=DEVICE,
                text="Device authentication is required."),
    530003: dict(title="Managed device required", severity="high", remediation=DEVICE,
                 text="Your device is required to be managed to access this resource."),
    50034: dict(
        title="User not found",
        severity="low",
        remediation=(
            "The user name does not exist in this tenant: usually a typo, a short name instead "
            "of the full UPN, or an e-mail alias that differs from the UPN. Passport needs the "
            "full UPN; check it in Entra (Users) and that the user belongs to the tenant in the "
            "Passport IdP URL."
        ),
        patterns=[r"\baccount\b.{0,160}?\bdoes not exist in the\b.{0,120}?\bdirectory", "the account must be added to the directory"],
        text="The user account {EUII Hidden} does not exist in the 1a2b3c4d-0000-4000-8000-123456789abc directory. To sign into this application, the account must be added to the directory.",
        bare="The user account {EUII Hidden} does not exist in the contoso.onmicrosoft.com directory. To sign into this application, the account must be added to the directory.",
    ),
    50020: dict(
        title="External account not in tenant",
        severity="medium",
        remediation=(
            "The account is a guest, personal or external identity that is not a member of the "
            "tenant; the password grant cannot sign in invited or personal accounts. Use a member "
            "account of the tenant for the Mac."
        ),
        patterns=[r"does not exist in tenant\b.{0,200}?\bcannot access the application"],
        text="User account 'someone@example.org' from identity provider 'live.com' does not exist in tenant 'Contoso' and cannot access the application '12345678-aaaa-bbbb-cccc-1234567890ab'(Kandji Passport) in that tenant. The account needs to be added as an external user in the tenant first.",
        bare="User account 'someone@example.org' from identity provider 'live.com' does not exist in tenant 'Contoso' and cannot access the application '12345678-aaaa-bbbb-cccc-1234567890ab'(Kandji Passport) in that tenant.",
    ),
    90072: dict(
        title="Account not in tenant (MFA)",
        severity="medium",
        remediation=(
            "The external or ImmutableID-mismatched account is not in the tenant, so the tenant's "
            "MFA cannot be satisfied. Use a member account, or fix the sync anchor "
            "(ImmutableID / sourceAnchor) so the on-prem and cloud accounts match."
        ),
        text="User account 'someone@example.org' from identity provider 'https://sts.windows.net/0000/' does not exist in tenant 'Contoso' and cannot access the application.",
    ),
    50053: dict(
        title="Account locked",
        severity="medium",
        remediation=(
            "Smart lockout after repeated wrong passwords, or the source IP is flagged as "
            "malicious. Read the failure reason in the sign-in log; let the lockout expire or "
            "unlock the user, and look for a stale saved password retrying in the background."
        ),
        patterns=[
            "too many times with an incorrect user id or password",
            r"\baccount is locked",
            "blocked because it came from an ip address with malicious activity",
        ],
        text="The account is locked, you've tried to sign in too many times with an incorrect user ID or password.",
        error="unauthorized_client",
        bare="Your account is locked because you've tried to sign in too many times with an incorrect user ID or password.",
    ),
    50057: dict(
        title="Account disabled",
        severity="medium",
        remediation="Sign-in is blocked for the account. Re-enable it in Entra (Users, Account enabled) or in on-premises AD for synced users, then wait for the next sync.",
        patterns=[r"\buser account is disabled", r"\baccount is disabled"],
        text="The user account is disabled.",
        bare="The user account is disabled.",
    ),
    50055: dict(
        title="Password expired",
        severity="medium",
        remediation="The cloud password has expired. Reset it (self-service password reset or an administrator) and have the user sign in at the Mac with the new password.",
        patterns=[r"\bpassword is expired"],
        text="The password is expired.",
        bare="The password is expired.",
    ),
    50144: dict(
        title="On-prem password expired",
        severity="medium",
        remediation="The on-premises Active Directory password has expired. Reset it on-premises (or via SSPR with password writeback) and let it sync before the user retries.",
        patterns=["active directory password has expired"],
        text="User's Active Directory password has expired.",
        bare="User's Active Directory password has expired.",
    ),
    50135: dict(
        title="Password change required (risk)",
        severity="medium",
        remediation="Identity Protection requires a password change because of account risk. The user must change the password in a browser first (or an administrator resets it and dismisses the risk); Passport cannot perform the change.",
        text="Password change is required due to account risk.",
    ),
    50142: dict(
        title="Password change required (policy)",
        severity="medium",
        remediation="A Conditional Access policy requires a password change. The user must change the password in a browser first; Passport cannot perform the change.",
        text="Password change is required due to a conditional access policy.",
    ),
    50056: dict(
        title="No password stored",
        severity="medium",
        remediation="Entra holds no password for this user (passwordless-only account, or a federated user without password hash sync), or the password sent was empty. Give the user a password, enable password hash sync for federated domains, or use Web Login.",
        patterns=["invalid or null password"],
        priority=5,
        text="Invalid or null password: password does not exist in the directory for this user.",
        bare="Invalid or null password: password does not exist in the directory for this user.",
    ),
    50105: dict(
        title="User not assigned to app",
        severity="high",
        remediation="The Passport enterprise application requires assignment and the user is not assigned. In Entra, Enterprise applications, the Passport app, Users and groups, assign the user or their group, or set \"Assignment required\" to No.",
        patterns=["not assigned to a role for the", r"specifically granted \('assigned'\) access"],
        text="Your administrator has configured the application Kandji Passport ('12345678-aaaa-bbbb-cccc-1234567890ab') to block users unless they are specifically granted ('assigned') access to the application. The signed in user '{EUII Hidden}' is blocked because they are not a direct member of a group with access, nor had access directly assigned by an administrator.",
        bare="The signed in user 'someone@contoso.com' is not assigned to a role for the application '12345678-aaaa-bbbb-cccc-1234567890ab'(Kandji Passport).",
    ),
    65001: dict(
        title="Consent missing",
        severity="high",
        remediation="The password grant cannot show a consent prompt. In the Passport app registration, API permissions, grant admin consent for the requested scopes (openid, profile, offline_access, User.Read).",
        patterns=["has not consented to use the application"],
        oauth_errors=["consent_required"],
        text=f"The user or administrator has not consented to use the application with ID {APP} named 'Kandji Passport'. Send an interactive authorization request for this user and resource.",
        suberror="consent_required",
        bare=f"The user or administrator has not consented to use the application with ID {APP} named 'Kandji Passport'.",
    ),
    90094: dict(
        title="Admin consent required",
        severity="high",
        remediation="Only an administrator can grant the requested permissions. In the Passport app registration, API permissions, select \"Grant admin consent\" for the tenant.",
        patterns=["administrator consent is required", r"requires admin(?:istrator)? permissions?"],
        text="The grant requires admin permission.",
        bare="Administrator consent is required for this application.",
    ),
    700016: dict(
        title="Application not found",
        severity="critical",
        remediation="The client ID is unknown in this tenant: wrong client ID in the Passport library item, the app is registered in another tenant, or the IdP URL names the wrong tenant. Compare the library item's client ID and IdP URL with the app registration's Overview page.",
        patterns=[r"application with identifier\b.{0,120}?\bwas not found in the directory"],
        text=f"Application with identifier {APP} was not found in the directory 'Contoso'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
        error="unauthorized_client",
        bare=f"Application with identifier {APP} was not found in the directory 'Contoso'.",
    ),
    7000112: dict(
        title="Application disabled",
        severity="critical",
        remediation="Sign-in to the Passport enterprise application (service principal) is disabled. In Entra, Enterprise applications, the Passport app, Properties, set \"Enabled for users to sign-in\" to Yes.",
        patterns=[r"\bapplication\b.{0,160}?\bis disabled"],
        text="Application '12345678-aaaa-bbbb-cccc-1234567890ab'(Kandji Passport) is disabled.",
        error="unauthorized_client",
        bare="Application '12345678-aaaa-bbbb-cccc-1234567890ab'(Kandji Passport) is disabled.",
    ),
    700025: dict(
        title="Secret sent to public client",
        severity="high",
        remediation="The app registration is a public client, so no client secret or assertion may be sent. Remove the client secret from the Passport library item (or whatever sends it).",
        patterns=["client is public so neither 'client_assertion' nor 'client_secret'"],
        text="Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
        error="invalid_client",
        bare="Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
    ),
    9001023: dict(
        title="Grant not allowed on /common",
        severity="critical",
        remediation="The IdP URL points at the /common or /consumers endpoint, where the password grant is not allowed. Use the tenant-specific metadata URL (https://login.microsoftonline.com/<tenant>/v2.0/.well-known/openid-configuration) or /organizations in the Passport library item.",
        patterns=[r"grant type is not supported over the /common or /consumers endpoints"],
        text="The grant type is not supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.",
        error="invalid_request",
        bare="The grant type is not supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.",
    ),
    90010: dict(
        title="Grant not supported (old /common)",
        severity="critical",
        wrapper=True,
        remediation="Older responses use 90010 when the password grant is sent to /common or /consumers. Use the tenant-specific metadata URL (or /organizations) in the Passport library item's IdP URL. Other 90010 requests are unsupported algorithms or parameters; read the description.",
        text="The grant type is not supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.",
        error="invalid_request",
    ),
    90002: dict(
        title="Tenant not found",
        severity="critical",
        remediation="The tenant ID or domain in the Passport IdP URL does not exist (typo, wrong cloud, or an unverified domain). Copy the tenant ID from the Entra overview page into the IdP URL.",
        patterns=[r"tenant '[^']{1,200}' not found"],
        text="Tenant 'contoso.onmicrosoft.co' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.",
        error="invalid_request",
        bare="Tenant 'contoso.onmicrosoft.co' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.",
    ),
    500021: dict(
        title="Tenant restrictions block",
        severity="high",
        remediation="A corporate proxy inserts tenant-restriction headers (Restrict-Access-To-Tenants) that do not list this tenant. Add the tenant to the proxy's permitted-tenant list, or exempt the Macs' login-window traffic.",
        text="Access to 'contoso.com' tenant is denied. This is because the tenant is not allowed by the tenant restrictions policy.",
        error="access_denied",
    ),
    70011: dict(
        title="Invalid scope",
        severity="high",
        remediation="The token request carries a missing or invalid scope, usually because the IdP URL or client ID in the Passport library item is wrong. Check both against the app registration.",
        text="The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid.",
        error="invalid_scope",
    ),
    900144: dict(
        title="Required parameter missing",
        severity="high",
        remediation="The token request lacks a required parameter (named in the message), which usually means the IdP URL or client ID in the Passport library item is wrong or empty.",
        patterns=["the request body must contain the following parameter:"],
        priority=-10,
        text="The request body must contain the following parameter: 'grant_type'.",
        error="invalid_request",
        bare="The request body must contain the following parameter: 'grant_type'.",
    ),
    50011: dict(
        title="Redirect URI mismatch",
        severity="high",
        remediation="Web Login only: the redirect URI Passport sends is not registered. Add it exactly (scheme, host, path, case) under the app registration's Authentication, Mobile and desktop applications.",
        patterns=["does not match the redirect uris configured", "reply url specified in the request does not match"],
        text="The redirect URI 'kandji-passport://auth' specified in the request does not match the redirect URIs configured for the application '12345678-aaaa-bbbb-cccc-1234567890ab'.",
        error="invalid_request",
        bare="The redirect URI 'kandji-passport://auth' specified in the request does not match the redirect URIs configured for the application.",
    ),
    700054: dict(
        title="ID tokens not enabled",
        severity="high",
        remediation="Web Login only: the app asks for an id_token but ID-token issuance is off. Enable \"ID tokens\" under the app registration's Authentication, Implicit grant and hybrid flows.",
        text="response_type 'id_token' is not enabled for the application.",
        error="unsupported_response_type",
    ),
    80001: dict(
        title="PTA agent cannot reach AD",
        severity="high",
        remediation="Pass-through authentication agents cannot reach Active Directory. Check the agents' status in Entra Connect, their service health and network access to the domain controllers; install a second agent for resilience.",
        text="Unable to connect to the Active Directory. Ensure that agent servers are members of the same AD forest as the users whose passwords need to be validated and they are able to connect to Active Directory.",
    ),
    80007: dict(
        title="PTA validation error",
        severity="high",
        remediation="A pass-through authentication agent could not validate the password. Read the agent's event log on the agent server and check its connectivity to Active Directory.",
        text="An error occurred when validating the password.",
    ),
    50173: dict(
        title="Grant revoked",
        severity="low",
        remediation="The stored grant was revoked (password changed or sessions revoked). The user signs in again with the current password.",
        patterns=["the provided grant has expired due to it being revoked"],
        text="The provided grant has expired due to it being revoked, a fresh auth token is needed.",
        bare="The provided grant has expired due to it being revoked, a fresh auth token is needed.",
    ),
}

# Codes not marked relevant in the TSV but worth hand-written text for Passport.
EXTRA = {
    70002: dict(
        title="Client credentials invalid",
        severity="high",
        wrapper=True,
        remediation=(
            "Older token responses use 70002 as a wrapper. Alone, with \"must contain the following "
            "parameter: 'client_secret or client_assertion'\", it means the Passport app registration "
            "is not a public client: set \"Allow public client flows\" to Yes under Authentication. "
            "When it wraps another code (e.g. 50126) passportd classifies by that code instead."
        ),
    ),
    50000: dict(title="Token issuance error", severity="medium", wrapper=True),
    70000: dict(title="Invalid grant", severity="medium", wrapper=True),
    50140: dict(title="Keep me signed in interrupt", severity="info"),
}

CATEGORY_LABEL = {
    "mfa_required": "MFA required",
    "conditional_access_block": "Conditional Access block",
    "device_or_compliance": "Device requirement",
    "risk_block": "Risk block",
    "invalid_credentials": "Invalid credentials",
    "federation_unsupported": "Federation issue",
    "hybrid_onprem": "Hybrid / on-prem issue",
    "account_locked": "Account locked",
    "account_disabled": "Account disabled",
    "password_expired": "Password change needed",
    "user_not_found": "User not in tenant",
    "user_not_assigned": "User not assigned",
    "consent_required": "Consent required",
    "client_misconfigured": "App configuration error",
    "app_not_found": "Application not found",
    "tenant_issue": "Tenant issue",
    "token_or_grant_invalid": "Token or grant invalid",
    "transient_service_error": "Service error",
    "protocol_error": "Protocol error",
    "interrupt_informational": "Sign-in interrupt",
    "other": "Other error",
}

NEXT_STEP = {
    "mfa_required": "If Passport is the client, the password grant cannot complete MFA: exclude the Passport app registration from the MFA requirement or use Web Login.",
    "conditional_access_block": "Open the sign-in log entry, Conditional Access tab, to see which policy applied and adjust or exclude as appropriate.",
    "device_or_compliance": "Device-based requirements cannot be met by Passport's password grant (it sends no device identity); exclude the Passport app registration from them if Passport is the client.",
    "risk_block": "Review the user's risk in Entra ID Protection (risky users / risky sign-ins) and remediate or dismiss it.",
    "invalid_credentials": "Have the user retry with correct credentials; check the sign-in log entry's failure reason for details.",
    "federation_unsupported": "The sign-in depends on a federated or external identity provider; check that provider's logs. Passport's password grant cannot complete federated sign-ins.",
    "hybrid_onprem": "Check the on-premises side: Entra Connect, pass-through authentication agents or seamless SSO configuration, and their logs.",
    "account_locked": "Check the lockout reason in the sign-in log and unlock the account if appropriate.",
    "account_disabled": "Re-enable the account if the user should have access.",
    "password_expired": "The user must change or reset the password in a browser; Passport cannot perform password changes.",
    "user_not_found": "Check the user name and that the account is a member of this tenant.",
    "user_not_assigned": "Assign the user to the application, or turn off assignment required.",
    "consent_required": "An administrator grants the missing consent on the application's API permissions page.",
    "client_misconfigured": "Review the app registration named in the request (Authentication, API permissions, certificates and secrets); this is an application setting, not a user problem.",
    "app_not_found": "Check the client or resource ID and that the application exists and is enabled in this tenant.",
    "tenant_issue": "Check the tenant named in the request and any tenant restrictions or cross-tenant access policies.",
    "token_or_grant_invalid": "The client must obtain a fresh token; a new interactive sign-in usually clears it.",
    "transient_service_error": "Usually transient on Microsoft's side: retry. If it persists, check Microsoft service health and open a support case.",
    "protocol_error": "This is a developer-level protocol fault in the request, not a Passport setting; if Passport sends it repeatedly, collect the Passport log and contact Kandji support.",
    "interrupt_informational": "Expected during interactive sign-ins; no action is needed.",
    "other": "Read the sign-in log entry's failure reason and additional details; open a Microsoft support case if it persists.",
}

SEVERITY = {
    "mfa_required": "high", "conditional_access_block": "high", "device_or_compliance": "high",
    "risk_block": "medium", "invalid_credentials": "low", "federation_unsupported": "high",
    "hybrid_onprem": "high", "account_locked": "medium", "account_disabled": "medium",
    "password_expired": "medium", "user_not_found": "low", "user_not_assigned": "high",
    "consent_required": "high", "client_misconfigured": "medium", "app_not_found": "high",
    "tenant_issue": "high", "token_or_grant_invalid": "low", "transient_service_error": "medium",
    "protocol_error": "low", "interrupt_informational": "info", "other": "low",
}

# Tokens kept verbatim when splitting Microsoft's CamelCase identifiers into words.
PROTECTED = [("NameIDPolicy", "NameID policy"), ("OnPremises", "on-premises"), ("OnPremise", "on-premises"), ("Timedout", "timed out"), ("OAuth2", "OAuth2"), ("IdP", "IdP"), ("IDP", "IdP"), ("XCB2B", "XCB2B"), ("B2B", "B2B"),
             ("WsFederation", "WS-Federation"), ("WsFed", "WS-Fed"), ("WsTrust", "WS-Trust"), ("OrgId", "OrgID"),
             ("Saml2", "SAML2"), ("PKeyAuth", "PKeyAuth"), ("AuthN", "authN"), ("OnPrem", "on-prem"),
             ("Doesnot", "does not"), ("Mustbe", "must be"), ("Ids", "IDS"), ("AADJ", "AADJ")]
ACRONYMS = {"sso": "SSO", "msa": "MSA", "msods": "MSODS", "jwt": "JWT", "saml": "SAML", "ngc": "NGC",
            "oidc": "OIDC", "kms": "KMS", "rsa": "RSA", "sas": "SAS", "uri": "URI", "crl": "CRL",
            "api": "API", "upn": "UPN", "sspr": "SSPR", "ad": "AD", "sid": "SID", "id": "ID", "kmsi": "KMSI",
            "cmsi": "CMSI", "slt": "SLT", "da": "DA", "jit": "JIT", "ngc": "NGC", "acr": "ACR", "xcb2b": "XCB2B"}


def humanize(name):
    """InvalidPasswordExpiredOnPremPassword -> "Invalid password expired on-prem password"."""
    for raw, shown in PROTECTED:
        name = name.replace(raw, f" \x00{shown}\x00 ")
    words = []
    for part in name.split():
        if part.startswith("\x00"):
            words.append(part.strip("\x00"))
            continue
        for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+", part):
            words.append(ACRONYMS.get(w.lower(), w if (w.isupper() and len(w) > 1) else w.lower()))
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def meaning_title(meaning, category):
    first = re.split(r"[;:(]| - |, so |, which ", meaning)[0].strip().rstrip(".")
    if first.startswith("Listed in the sign-in report codes"):
        rest = meaning.split(":", 1)[1].strip() if ":" in meaning else ""
        first = re.split(r"[;,(]", rest)[0].strip().rstrip(".") or first
    if 0 < len(first) <= 64:
        return first[:1].upper() + first[1:]
    return CATEGORY_LABEL[category]


def toml_str(s):
    return json.dumps(s, ensure_ascii=False)


def toml_list(items):
    return "[" + ", ".join(toml_str(i) for i in items) + "]"


def emit(out, fields):
    out.append("[[entry]]")
    for key, value in fields:
        if value is None:
            continue
        if isinstance(value, bool):
            out.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, int):
            out.append(f"{key} = {value}")
        elif isinstance(value, list):
            if not value:
                continue
            if all(isinstance(v, int) for v in value):
                out.append(f"{key} = [{', '.join(str(v) for v in value)}]")
            elif len(value) == 1 and len(toml_str(value[0])) < 80:
                out.append(f"{key} = {toml_list(value)}")
            else:
                out.append(f"{key} = [")
                for v in value:
                    out.append(f"  {toml_str(v) if isinstance(v, str) else v},")
                out.append("]")
        else:
            out.append(f"{key} = {toml_str(value)}")
    out.append("")


def main():
    rows = list(csv.DictReader(TSV.open(encoding="utf-8"), delimiter="\t"))
    out = [
        "# passportd error catalogue (shipped). Generated by scripts/gen_catalogue.py from",
        "# tests/fixtures/aadsts-codes.tsv; edit the script, not this file, and regenerate.",
        "#",
        "# Operators override entries (by id) or add their own in files listed under",
        "# [catalogue] extra_paths; see src/classify/catalogue.rs for the schema.",
        "",
        "version = 1",
        "",
    ]
    seen = set()
    for row in rows:
        code = int(row["code"])
        seen.add(code)
        name = None if row["name"] == "-" else row["name"]
        category = row["category"]
        relevant = row["passport_relevant"] == "yes"
        meaning = row["meaning"].strip()
        if code == 0:
            emit(out, [
                ("id", "aadsts-0"), ("codes", [0]), ("category", "other"), ("outcome", "success"),
                ("actor", row["actor"]), ("severity", "info"), ("passport_relevant", False),
                ("title", "Sign-in succeeded"),
                ("remediation", "Nothing to do: result code 0 is a successful sign-in. passportd counts it as a success, never as a failure."),
            ])
            continue
        spec = RELEVANT.get(code) or EXTRA.get(code) or {}
        if relevant and code not in RELEVANT:
            raise SystemExit(f"relevant code {code} has no hand-written entry")
        title = spec.get("title") or (humanize(name) if name else meaning_title(meaning, category))
        remediation = spec.get("remediation")
        if not remediation:
            lead = meaning if meaning.endswith(".") else meaning + "."
            passport = "" if category == "interrupt_informational" else " Passport's password sign-in does not normally produce this code."
            remediation = f"{lead}{passport} {NEXT_STEP[category]}"
        examples = []
        if "text" in spec:
            examples.append(body(code, spec["text"], spec.get("error", "invalid_grant"), spec.get("suberror")))
            examples.append(f"AADSTS{code}: {spec['text']}")
        if "bare" in spec:
            examples.append(spec["bare"])
        emit(out, [
            ("id", f"aadsts-{code}"), ("codes", [code]), ("name", name), ("category", category),
            ("actor", row["actor"]), ("severity", spec.get("severity") or SEVERITY[category]),
            ("passport_relevant", relevant), ("wrapper", True if spec.get("wrapper") else None),
            ("title", title), ("remediation", remediation),
            ("patterns", spec.get("patterns", [])), ("oauth_errors", spec.get("oauth_errors", [])),
            ("priority", spec.get("priority")),
            ("examples", examples), ("counter_examples", spec.get("counter", [])),
        ])
        if code == 50126:
            emit_federated(out)
    missing = set(RELEVANT) - seen
    if missing:
        raise SystemExit(f"hand-written codes missing from the TSV: {sorted(missing)}")
    out.append(PATTERN_ENTRIES.strip() + "\n")
    sys.stdout.write("\n".join(out))


def emit_federated(out):
    emit(out, [
        ("id", "aadsts-50126-federated"), ("codes", [50126]), ("name", "InvalidUserNameOrPassword"),
        ("category", "federation_unsupported"), ("actor", "admin"), ("severity", "high"),
        ("passport_relevant", True), ("title", "Federated domain (password grant)"),
        ("remediation", (
            "The user's domain is federated (AD FS or another identity provider), and the OAuth "
            "password grant Passport uses cannot validate a federated password, so every user of "
            "the domain fails with 50126. Either enable password hash sync for the domain and "
            "apply a Home Realm Discovery policy with AllowCloudPasswordValidation = true to the "
            "Passport app's service principal, or switch Passport to Web Login for these users."
        )),
        ("patterns", ["error validating credentials due to invalid username or password", "invalid username or password"]),
    ])
    # Conditions and structured examples are tables; append them by hand.
    out.pop()
    out.extend([
        "conditions = { require = \"any\", token_issuer_type = [\"ADFederationServices\", \"ADFederationServicesMFAAdapter\", \"Federated\"], federated_domain = true }",
        "examples = [",
        "  { message = " + toml_str(body(50126, "Error validating credentials due to invalid username or password.")) + ", token_issuer_type = \"ADFederationServices\" },",
        "  { result_code = 50126, token_issuer_type = \"ADFederationServices\" },",
        "  { message = \"Error validating credentials due to invalid username or password.\", token_issuer_type = \"federated\" },",
        "]",
        "counter_examples = [",
        "  { message = \"AADSTS50126: Error validating credentials due to invalid username or password.\", token_issuer_type = \"AzureAD\" },",
        "]",
        "",
    ])


# Pattern-only entries: lines that carry no AADSTS code. Weak OAuth `error` fallbacks use
# negative priorities so that any message fragment beats them.
PATTERN_ENTRIES = r'''
[[entry]]
id = "adfs-security-token-rejected"
category = "federation_unsupported"
actor = "admin"
severity = "high"
passport_relevant = true
title = "AD FS rejected the credentials"
remediation = "AD FS (WS-Trust) rejected the sign-in: the account is federated and the password grant went to the federation server. Check the AD FS admin log for the request; for Passport prefer password hash sync with a Home Realm Discovery policy (AllowCloudPasswordValidation) or Web Login for federated users."
patterns = ['\bID3242\b', 'the security token could not be authenticated or authorized', 'federated service at \S+ returned error']
examples = [
  "ID3242: The security token could not be authenticated or authorized.",
  "MSAL: Federated service at https://sts.contoso.com/adfs/services/trust/13/usernamemixed returned error: ID3242: The security token could not be authenticated or authorized.",
]

[[entry]]
id = "okta-invalid-credentials"
category = "invalid_credentials"
actor = "user"
severity = "low"
passport_relevant = true
title = "Okta: invalid credentials"
remediation = "Okta rejected the user name or password. Have the user retry; if it persists check the user's status in the Okta admin console (System Log for the event) and that the Passport library item points at the right Okta org."
patterns = ["the credentials provided were invalid"]
examples = [
  '{"error":"invalid_grant","error_description":"The credentials provided were invalid."}',
  "The credentials provided were invalid.",
]

[[entry]]
id = "okta-grant-type-not-allowed"
category = "client_misconfigured"
actor = "admin"
severity = "critical"
passport_relevant = true
title = "Okta: password grant not enabled"
remediation = "The Okta OIDC app used by Passport does not allow the Resource Owner Password grant. In the Okta admin console open the app, General, Grant type, and enable Resource Owner Password."
patterns = ['client is not authorized to use the provided grant type']
examples = ['{"error":"unauthorized_client","error_description":"The client is not authorized to use the provided grant type. Configured grant types: [authorization_code]."}']

[[entry]]
id = "okta-client-authentication-failed"
category = "client_misconfigured"
actor = "admin"
severity = "critical"
passport_relevant = true
title = "Okta: client authentication failed"
remediation = "Okta does not recognise the client: the client ID (or a client secret) in the Passport library item is wrong, or the app is a web app instead of a native one. Compare the library item with the Okta app's General tab."
patterns = ['client authentication failed\. either the client or the client credentials are invalid']
examples = ['{"error":"invalid_client","error_description":"Client authentication failed. Either the client or the client credentials are invalid."}']

[[entry]]
id = "okta-policy-denied"
category = "conditional_access_block"
actor = "admin"
severity = "high"
passport_relevant = true
title = "Okta: sign-on policy denied"
remediation = "An Okta authentication or sign-on policy denied the password grant (often because it requires MFA, which the password grant cannot do). Check the System Log event for the policy and allow password-only access for the Passport app, or use Web Login."
patterns = ['policy evaluation failed for this request']
examples = ['{"error":"access_denied","error_description":"Policy evaluation failed for this request, please check the policy configurations."}']

[[entry]]
id = "google-ldap-invalid-credentials"
category = "invalid_credentials"
actor = "user"
severity = "low"
passport_relevant = true
title = "Google LDAP: invalid credentials"
remediation = "Google Secure LDAP returned result code 49 (invalid credentials): wrong password or user name. Have the user retry; if every user fails, check the LDAP client's certificate and that the user's organisational unit is in the client's access scope in the Google Admin console."
patterns = ['\bldap\b.{0,80}?\b(?:result code|error|code|rc)\s*[:=#]?\s*\(?49\b', '\binvalidCredentials\b', '\bldap\w*\b.{0,40}?invalid credentials']
examples = [
  "LDAP bind failed: Result Code 49 \"Invalid Credentials\"",
  "ldap_bind: Invalid credentials (49)",
]
counter_examples = ["LDAP bind failed: Result Code 50 \"Insufficient Access Rights\""]

[[entry]]
id = "google-ldap-insufficient-access"
category = "consent_required"
actor = "admin"
severity = "high"
passport_relevant = true
title = "Google LDAP: insufficient access"
remediation = "Google Secure LDAP returned result code 50 (insufficient access rights): the LDAP client is not allowed to verify or read this user. In the Google Admin console, Apps, LDAP, open the client's Access permissions and allow \"Verify user credentials\" and \"Read user information\" for the users' organisational units."
patterns = ['\bldap\b.{0,80}?\b(?:result code|error|code|rc)\s*[:=#]?\s*\(?50\b', '\binsufficientAccessRights\b', '\bldap\w*\b.{0,40}?insufficient access']
examples = [
  "LDAP bind failed: Result Code 50 \"Insufficient Access Rights\"",
  "ldap_bind: Insufficient access (50)",
]

[[entry]]
id = "mac-network-unreachable"
category = "other"
actor = "admin"
severity = "medium"
passport_relevant = true
title = "Mac offline or identity provider unreachable"
remediation = "The Mac could not reach the identity provider at all (no network at the login window, DNS, a captive portal, a proxy only a logged-in user has): no sign-in was attempted. Passport needs the network before anyone logs in: make the Mac auto-join a network that needs no user session (no 802.1X user certificate, no captive portal), check DNS, and that login.microsoftonline.com (or your IdP's host) is reachable without a per-user proxy."
patterns = ['\b(?:token|sign[- ]?in|log[- ]?in failed|authenticat)[^\n]*?\bNSURLErrorDomain\b.{0,20}?\bCode\s*=\s*-10(?:01|03|04|05|09|18|20)\b', '\b(?:token|sign[- ]?in|log[- ]?in failed|authenticat)[^\n]*?\binternet connection appears to be offline\b', '\b(?:token|sign[- ]?in|log[- ]?in failed|authenticat)[^\n]*?\bthe request timed out\b', '\b(?:token|sign[- ]?in|log[- ]?in failed|authenticat)[^\n]*?\bcould not connect to the server\b', '\b(?:token|sign[- ]?in|log[- ]?in failed|authenticat)[^\n]*?\bnetwork connection was lost\b', '\b(?:token|sign[- ]?in|log[- ]?in failed|authenticat)[^\n]*?\bserver with the specified hostname could not be found\b']
priority = -50
examples = [
  'Failed to obtain token: Error Domain=NSURLErrorDomain Code=-1009 "The Internet connection appears to be offline."',
  'Failed to obtain token: Error Domain=NSURLErrorDomain Code=-1001 "The request timed out."',
  "Authentication failed: The network connection was lost.",
]

[[entry]]
id = "mac-tls-failure"
category = "other"
actor = "admin"
severity = "high"
passport_relevant = true
title = "Secure connection to the identity provider failed"
remediation = "The Mac reached the identity provider but TLS failed (NSURLErrorDomain -1200 to -1206): usually a TLS-inspecting proxy or firewall whose certificate the Mac does not trust at the login window, sometimes a wrong system clock. Exempt login.microsoftonline.com (and your IdP's host) from TLS inspection, or deploy the inspecting CA as a trusted root in a configuration profile; check the Mac's clock."
patterns = ['\b(?:token|sign[- ]?in|log[- ]?in failed|authenticat)[^\n]*?\bNSURLErrorDomain\b.{0,20}?\bCode\s*=\s*-120[0-6]\b', '\b(?:token|sign[- ]?in|log[- ]?in failed|authenticat)[^\n]*?\ban SSL error has occurred\b', '\b(?:token|sign[- ]?in|log[- ]?in failed|authenticat)[^\n]*?\ba secure connection to the server cannot be made\b', '\b(?:token|sign[- ]?in|log[- ]?in failed|authenticat)[^\n]*?\bcertificate for this server is invalid\b']
priority = -50
examples = [
  'Failed to obtain token: Error Domain=NSURLErrorDomain Code=-1200 "An SSL error has occurred and a secure connection to the server cannot be made."',
]

[[entry]]
id = "oauth-interaction-required"
category = "mfa_required"
actor = "admin"
severity = "high"
passport_relevant = true
title = "Interaction required"
remediation = "The identity provider answered interaction_required without a code: the sign-in needs an interactive step (usually MFA, sometimes a Conditional Access control) that the password grant cannot perform. Find the matching sign-in log entry for the exact reason; exclude the Passport app from the requirement or use Web Login."
oauth_errors = ["interaction_required"]
priority = -100
examples = [
  '{"error":"interaction_required","error_description":"The request requires user interaction."}',
  'Token request failed: error=interaction_required',
]

[[entry]]
id = "oauth-invalid-grant"
category = "invalid_credentials"
actor = "user"
severity = "low"
passport_relevant = true
title = "Grant rejected"
remediation = "The identity provider answered invalid_grant without a code. For the password grant this is most often a wrong password, sometimes missing consent. Find the matching sign-in log entry (by time or correlation ID) for the exact reason."
oauth_errors = ["invalid_grant"]
priority = -100
examples = [
  '{"error":"invalid_grant","error_description":"Authentication failed."}',
  'Token request failed: invalid_grant',
  'Error Domain=MSALErrorDomain Code=-50002 "(null)" UserInfo={MSALOAuthErrorKey=invalid_grant}',
]
counter_examples = ['{"error":"invalid_grant","error_description":"The credentials provided were invalid."}']

[[entry]]
id = "oauth-client-rejected"
category = "client_misconfigured"
actor = "admin"
severity = "high"
passport_relevant = true
title = "Client rejected"
remediation = "The identity provider rejected the client (invalid_client or unauthorized_client) without a code: check the client ID, the IdP URL and whether the app allows the password grant / public client flows."
oauth_errors = ["invalid_client", "unauthorized_client"]
priority = -100
examples = ['{"error":"invalid_client","error_description":"Invalid client."}']

[[entry]]
id = "oauth-invalid-request"
category = "client_misconfigured"
actor = "admin"
severity = "medium"
passport_relevant = true
title = "Invalid token request"
remediation = "The identity provider answered invalid_request without a code, which for the password grant usually means the wrong endpoint (e.g. /common) or a missing parameter. Check the IdP URL and client ID in the Passport library item."
oauth_errors = ["invalid_request", "invalid_scope", "unsupported_grant_type"]
priority = -100
examples = ['{"error":"invalid_request","error_description":"Bad request."}']

[[entry]]
id = "oauth-access-denied"
category = "conditional_access_block"
actor = "admin"
severity = "medium"
passport_relevant = true
title = "Access denied"
remediation = "The identity provider answered access_denied without a code: a sign-in policy refused the request. Find the matching sign-in log entry to see which policy applied."
oauth_errors = ["access_denied"]
priority = -100
examples = ['{"error":"access_denied","error_description":"Access denied."}']

[[entry]]
id = "oauth-server-error"
category = "transient_service_error"
actor = "service"
severity = "medium"
passport_relevant = true
title = "Identity provider unavailable"
remediation = "The identity provider reported a server-side or temporary error. Retry; if it persists check the provider's service health."
oauth_errors = ["server_error", "temporarily_unavailable"]
patterns = ["\\bHTTP(?:/[0-9.]+)?:?\\s*(?:status\\s*)?(?:429|50[0234])\\b", "\\btoo many requests\\b", "\\b(?:503 )?service unavailable\\b"]
priority = -100
examples = [
  '{"error":"temporarily_unavailable","error_description":"The service is temporarily unavailable."}',
  'Token request failed: HTTP 429 Too Many Requests',
  'Token request failed: HTTP 503 Service Unavailable',
]
'''

if __name__ == "__main__":
    main()
